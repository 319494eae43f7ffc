package kafka

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	kscram "github.com/segmentio/kafka-go/sasl/scram"
	kgosasl "github.com/twmb/franz-go/pkg/sasl"
	kgoplain "github.com/twmb/franz-go/pkg/sasl/plain"
	kgoscram "github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/xdg-go/stringprep"

	"github.com/tpflow/tpflow/schemas"
)

// SASL for both Kafka clients: kafka-go (the producer, the admin client)
// and franz-go (consumers, group consumers, transactional producers). Each
// uses its own library's SCRAM; what the libraries leave out is here and
// serves both: SASLprep of the credentials and an upper bound on the
// iteration count.

// SASLMechanism builds the kafka-go SASL mechanism (the producer and the
// admin client), or returns nil when SASL is off.
func (c Config) SASLMechanism() (sasl.Mechanism, error) {
	m, _, err := c.saslMechanisms()
	return m, err
}

// kgoSASL builds the franz-go SASL mechanism (consumers, group consumers,
// transactional producers), or returns nil when SASL is off.
func (c Config) kgoSASL() (kgosasl.Mechanism, error) {
	_, m, err := c.saslMechanisms()
	return m, err
}

// saslMechanisms builds the mechanism of c for each client, from the same
// prepared credentials. SCRAM for kafka-go is its sasl/scram
// (github.com/xdg-go/scram), which refuses a server-first message with a
// mandatory extension (m=) and fewer than 4096 iterations; capIterations
// adds franz-go's upper bound. SCRAM for franz-go is its pkg/sasl/scram,
// which refuses the same and more than maxSCRAMIterations iterations but
// does not SASLprep: the credentials come prepared from
// SASLConfig.credentials.
func (c Config) saslMechanisms() (sasl.Mechanism, kgosasl.Mechanism, error) {
	user, pass, err := c.SASL.credentials()
	if err != nil {
		return nil, nil, err
	}
	var m sasl.Mechanism
	switch c.SASL.Mechanism {
	case "":
		return nil, nil, nil
	case SASLPlain:
		return plain.Mechanism{Username: user, Password: pass}, kgoplain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case SASLScramSHA256:
		if m, err = capIterations(kscram.Mechanism(kscram.SHA256, user, pass)); err != nil {
			return nil, nil, err
		}
		return m, kgoscram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case SASLScramSHA512:
		if m, err = capIterations(kscram.Mechanism(kscram.SHA512, user, pass)); err != nil {
			return nil, nil, err
		}
		return m, kgoscram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, nil, fmt.Errorf("unknown SASL mechanism %q", c.SASL.Mechanism)
}

// credentials returns the username and password to authenticate with:
// for SCRAM prepared with SASLprep (RFC 4013), as RFC 5802 asks, so that
// "I\u00ADX" and "IX" are one password, as for Kafka's own clients; for
// PLAIN as given. The error names the key and never the value (the
// library's own SASLprep error quotes the password).
func (s SASLConfig) credentials() (user, pass string, err error) {
	user, pass = s.Username, s.Password.Reveal()
	if s.Mechanism != SASLScramSHA256 && s.Mechanism != SASLScramSHA512 {
		return user, pass, nil
	}
	if user, err = stringprep.SASLprep.Prepare(user); err != nil {
		return "", "", schemas.Fieldf("sasl.username", "%q is not a valid SCRAM user name: SASLprep (RFC 4013) refuses it: %v", s.Username, err)
	}
	if pass, err = stringprep.SASLprep.Prepare(pass); err != nil {
		return "", "", schemas.Fieldf("sasl.password", "not a valid SCRAM password: SASLprep (RFC 4013) refuses a character in it (a control, private-use or unassigned character)")
	}
	if user == "" || pass == "" {
		return "", "", schemas.Fieldf("sasl", "SCRAM needs a user name and a password that are not empty after SASLprep (RFC 4013)")
	}
	return user, pass, nil
}

// maxSCRAMIterations bounds the iteration count a server may ask for.
// Kafka brokers use at most 16384; franz-go refuses more than 2^20, since
// a hostile server asking for 2^31 keeps PBKDF2 busy for minutes per
// connection. capIterations applies the same bound to kafka-go's SCRAM,
// which has none.
const maxSCRAMIterations = 1 << 20

// capIterations wraps a kafka-go SCRAM mechanism so that a server-first
// message asking for more than maxSCRAMIterations is refused before the
// key is derived.
func capIterations(m sasl.Mechanism, err error) (sasl.Mechanism, error) {
	if err != nil {
		return nil, fmt.Errorf("cannot set up SCRAM: %w", err)
	}
	return cappedSCRAM{m}, nil
}

type cappedSCRAM struct{ sasl.Mechanism }

// Start implements sasl.Mechanism.
func (c cappedSCRAM) Start(ctx context.Context) (sasl.StateMachine, []byte, error) {
	sm, first, err := c.Mechanism.Start(ctx)
	if err != nil {
		return nil, nil, err
	}
	return &cappedSession{StateMachine: sm}, first, nil
}

type cappedSession struct {
	sasl.StateMachine
	seenFirst bool
}

// Next implements sasl.StateMachine.
func (s *cappedSession) Next(ctx context.Context, challenge []byte) (bool, []byte, error) {
	if !s.seenFirst {
		s.seenFirst = true
		for _, attr := range bytes.Split(challenge, []byte(",")) {
			if v, ok := bytes.CutPrefix(attr, []byte("i=")); ok {
				if n, err := strconv.Atoi(string(v)); err == nil && n > maxSCRAMIterations {
					return false, nil, fmt.Errorf("SCRAM server asks for %d iterations, more than the %d allowed", n, maxSCRAMIterations)
				}
			}
		}
	}
	return s.StateMachine.Next(ctx, challenge)
}
