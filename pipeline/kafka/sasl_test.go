package kafka

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/xdg-go/scram"

	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/schemas"
)

// scramClient is one of the two Kafka clients' SCRAM mechanisms, driven
// step by step: start returns the client-first message and the function
// that answers each server message.
type scramClient struct {
	name  string
	start func(t *testing.T) ([]byte, func([]byte) (bool, []byte, error))
}

// scramClients returns the mechanisms cfg builds for kafka-go and franz-go.
func scramClients(cfg Config) []scramClient {
	ctx := context.Background()
	return []scramClient{
		{"kafka-go", func(t *testing.T) ([]byte, func([]byte) (bool, []byte, error)) {
			m, err := cfg.SASLMechanism()
			if err != nil {
				t.Fatal(err)
			}
			sm, first, err := m.Start(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return first, func(b []byte) (bool, []byte, error) { return sm.Next(ctx, b) }
		}},
		{"franz-go", func(t *testing.T) ([]byte, func([]byte) (bool, []byte, error)) {
			m, err := cfg.kgoSASL()
			if err != nil {
				t.Fatal(err)
			}
			sess, first, err := m.Authenticate(ctx, "127.0.0.1:9092")
			if err != nil {
				t.Fatal(err)
			}
			return first, sess.Challenge
		}},
	}
}

// clientNonce is the r= attribute of a client-first message.
func clientNonce(t *testing.T, first []byte) string {
	t.Helper()
	for _, attr := range strings.Split(string(first), ",") {
		if v, ok := strings.CutPrefix(attr, "r="); ok {
			return v
		}
	}
	t.Fatalf("client-first %q has no nonce", first)
	return ""
}

// TestSCRAMRefusesHostileServer answers both clients' client-first
// messages with server-first messages RFC 5802 and Kafka rule out: each
// must be refused before a proof is sent.
func TestSCRAMRefusesHostileServer(t *testing.T) {
	salt := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	for _, mech := range []string{SASLScramSHA256, SASLScramSHA512} {
		cfg := DefaultConfig()
		cfg.SASL = SASLConfig{Mechanism: mech, Username: "tpflow", Password: "s3cret"}
		for _, c := range scramClients(cfg) {
			for name, serverFirst := range map[string]func(nonce string) string{
				"mandatory extension": func(n string) string { return "m=must-understand,r=" + n + "srv,s=" + salt + ",i=4096" },
				"too few iterations":  func(n string) string { return "r=" + n + "srv,s=" + salt + ",i=4095" },
				"too many iterations": func(n string) string { return "r=" + n + "srv,s=" + salt + ",i=2147483647" },
				"foreign nonce":       func(string) string { return "r=someone-else,s=" + salt + ",i=4096" },
				"server error":        func(string) string { return "e=unknown-user" },
			} {
				first, next := c.start(t)
				msg := serverFirst(clientNonce(t, first))
				if _, final, err := next([]byte(msg)); err == nil {
					t.Errorf("%s %s: %s: server-first %q answered with %q, want it refused", mech, c.name, name, msg, final)
				}
			}
			// A well-formed exchange whose server signature is forged.
			first, next := c.start(t)
			if _, _, err := next([]byte("r=" + clientNonce(t, first) + "srv,s=" + salt + ",i=4096")); err != nil {
				t.Fatalf("%s %s: good server-first refused: %v", mech, c.name, err)
			}
			if _, _, err := next([]byte("v=" + base64.StdEncoding.EncodeToString([]byte("forged")))); err == nil {
				t.Errorf("%s %s: forged server signature accepted", mech, c.name)
			}
		}
	}
}

// TestSCRAMPreparesCredentials runs both clients against a SCRAM server
// that holds the credentials "tpflow" / "IX": a user name and password
// that are the same after SASLprep (RFC 4013) must authenticate, and a
// different password must not.
func TestSCRAMPreparesCredentials(t *testing.T) {
	for mech, hash := range map[string]scram.HashGeneratorFcn{SASLScramSHA256: sha256.New, SASLScramSHA512: sha512.New} {
		stored, err := hash.NewClientUnprepped("tpflow", "IX", "")
		if err != nil {
			t.Fatal(err)
		}
		creds := stored.GetStoredCredentials(scram.KeyFactors{Salt: "salt-of-sixteen!", Iters: 4096})
		server, err := hash.NewServer(func(user string) (scram.StoredCredentials, error) {
			if user != "tpflow" {
				return scram.StoredCredentials{}, errors.New("unknown user")
			}
			return creds, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			user, pass string
			ok         bool
		}{
			{"tpflow", "IX", true},
			{"tpfl\u00adow", "I\u00adX", true}, // soft hyphen maps to nothing
			{"tpflow", "\u2168", true},         // ROMAN NUMERAL NINE is IX under NFKC
			{"tpflow", "ix", false},
		} {
			cfg := DefaultConfig()
			cfg.SASL = SASLConfig{Mechanism: mech, Username: tc.user}
			cfg.SASL.Password = config.Secret(tc.pass)
			for _, c := range scramClients(cfg) {
				conv := server.NewConversation()
				msg, next := c.start(t)
				var err error
				for step := 0; step < 2 && err == nil; step++ {
					var reply string
					if reply, err = conv.Step(string(msg)); err == nil {
						_, msg, err = next([]byte(reply))
					}
				}
				if tc.ok && (err != nil || !conv.Valid()) {
					t.Errorf("%s %s: %q/%q refused: %v", mech, c.name, tc.user, tc.pass, err)
				}
				if !tc.ok && err == nil && conv.Valid() {
					t.Errorf("%s %s: wrong password %q accepted", mech, c.name, tc.pass)
				}
			}
		}
	}
}

// TestSCRAMCredentialErrorsHideThePassword checks that a password SASLprep
// refuses is reported at its key by Validate, without the password.
func TestSCRAMCredentialErrorsHideThePassword(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SASL = SASLConfig{Mechanism: SASLScramSHA256, Username: "tpflow", Password: config.Secret("hunter2\u0007bell")}
	err := cfg.Validate()
	var fe *schemas.FieldError
	if !errors.As(err, &fe) || fe.Field != "sasl.password" {
		t.Fatalf("Validate() = %v, want an error on sasl.password", err)
	}
	for _, build := range []error{err, second(cfg.SASLMechanism()), second(cfg.kgoSASL())} {
		if build == nil || strings.Contains(build.Error(), "hunter2") {
			t.Errorf("error %v: want one that does not show the password", build)
		}
	}
}

func second[T any](_ T, err error) error { return err }
