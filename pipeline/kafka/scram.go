package kafka

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"github.com/segmentio/kafka-go/sasl"
)

// scramMechanism is a SCRAM client (RFC 5802, without channel binding) for
// SASL/SCRAM-SHA-256 and SCRAM-SHA-512. It is ours rather than kafka-go's
// sasl/scram so that the module graph stays as pinned; usernames are
// escaped as the RFC asks, passwords are used as given (no SASLprep), which
// matches Kafka's own clients for ASCII passwords.
type scramMechanism struct {
	name     string
	newHash  func() hash.Hash
	user     string
	password string
	// nonce is overridden by tests for a deterministic exchange.
	nonce func() (string, error)
}

func newScram(name string, newHash func() hash.Hash, user, password string) *scramMechanism {
	return &scramMechanism{name: name, newHash: newHash, user: user, password: password, nonce: randomNonce}
}

func scramSHA256(user, password string) *scramMechanism {
	return newScram("SCRAM-SHA-256", sha256.New, user, password)
}

func scramSHA512(user, password string) *scramMechanism {
	return newScram("SCRAM-SHA-512", sha512.New, user, password)
}

func randomNonce() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawStdEncoding.EncodeToString(b), nil
}

// Name implements sasl.Mechanism.
func (m *scramMechanism) Name() string { return m.name }

// Start implements sasl.Mechanism: it sends the client-first message.
func (m *scramMechanism) Start(context.Context) (sasl.StateMachine, []byte, error) {
	nonce, err := m.nonce()
	if err != nil {
		return nil, nil, fmt.Errorf("cannot make SCRAM nonce: %w", err)
	}
	user := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(m.user)
	bare := "n=" + user + ",r=" + nonce
	s := &scramSession{m: m, nonce: nonce, clientFirstBare: bare}
	return s, []byte("n,," + bare), nil
}

type scramSession struct {
	m               *scramMechanism
	nonce           string
	clientFirstBare string
	serverSignature []byte
	step            int
}

// Next implements sasl.StateMachine: step 1 answers the server-first
// message with the proof, step 2 checks the server signature.
func (s *scramSession) Next(_ context.Context, challenge []byte) (bool, []byte, error) {
	s.step++
	switch s.step {
	case 1:
		return s.clientFinal(challenge)
	case 2:
		attrs := scramAttrs(challenge)
		if e, ok := attrs["e"]; ok {
			return false, nil, fmt.Errorf("SCRAM server error: %s", e)
		}
		v, err := base64.StdEncoding.DecodeString(attrs["v"])
		if err != nil || !hmac.Equal(v, s.serverSignature) {
			return false, nil, errors.New("SCRAM server signature does not match: the broker does not know the password")
		}
		return true, nil, nil
	}
	return false, nil, errors.New("SCRAM exchange has no further steps")
}

func (s *scramSession) clientFinal(serverFirst []byte) (bool, []byte, error) {
	attrs := scramAttrs(serverFirst)
	if e, ok := attrs["e"]; ok {
		return false, nil, fmt.Errorf("SCRAM server error: %s", e)
	}
	nonce := attrs["r"]
	if !strings.HasPrefix(nonce, s.nonce) || len(nonce) == len(s.nonce) {
		return false, nil, errors.New("SCRAM server nonce does not extend the client nonce")
	}
	salt, err := base64.StdEncoding.DecodeString(attrs["s"])
	if err != nil || len(salt) == 0 {
		return false, nil, errors.New("SCRAM server sent no usable salt")
	}
	iter, err := strconv.Atoi(attrs["i"])
	if err != nil || iter < 1 {
		return false, nil, fmt.Errorf("SCRAM server sent a bad iteration count %q", attrs["i"])
	}
	keyLen := s.m.newHash().Size()
	salted, err := pbkdf2.Key(s.m.newHash, s.m.password, salt, iter, keyLen)
	if err != nil {
		return false, nil, fmt.Errorf("cannot derive SCRAM key: %w", err)
	}
	withoutProof := "c=biws,r=" + nonce
	authMessage := s.clientFirstBare + "," + string(serverFirst) + "," + withoutProof

	clientKey := s.hmac(salted, "Client Key")
	h := s.m.newHash()
	h.Write(clientKey)
	storedKey := h.Sum(nil)
	signature := s.hmac(storedKey, authMessage)
	proof := make([]byte, len(clientKey))
	for i := range clientKey {
		proof[i] = clientKey[i] ^ signature[i]
	}
	serverKey := s.hmac(salted, "Server Key")
	s.serverSignature = s.hmac(serverKey, authMessage)
	return false, []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

func (s *scramSession) hmac(key []byte, msg string) []byte {
	mac := hmac.New(s.m.newHash, key)
	mac.Write([]byte(msg))
	return mac.Sum(nil)
}

// scramAttrs splits "a=1,b=2" into a map; values may contain '='.
func scramAttrs(msg []byte) map[string]string {
	out := map[string]string{}
	for _, part := range bytes.Split(msg, []byte(",")) {
		if len(part) >= 2 && part[1] == '=' {
			out[string(part[0])] = string(part[2:])
		}
	}
	return out
}
