package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLSFiles are the PEM files of a test CA, a server certificate for
// localhost, 127.0.0.1 and ::1 signed by it, and a client certificate
// signed by it.
type TLSFiles struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
	// ClientCN is the client certificate's subject common name.
	ClientCN string
}

// WriteTLS generates a CA and its server and client certificates (ECDSA
// P-256, valid for an hour; the client's subject common name is clientCN)
// and writes them into dir as ca.crt, server.crt, server.key, client.crt
// and client.key.
func WriteTLS(tb testing.TB, dir, clientCN string) TLSFiles {
	tb.Helper()
	caKey := newKey(tb)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tpflow test CA"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	f := TLSFiles{CA: filepath.Join(dir, "ca.crt"), ClientCN: clientCN}
	writePEM(tb, f.CA, "CERTIFICATE", caDER)
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage, certFile, keyFile string) {
		key := newKey(tb)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			tb.Fatal(err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			tb.Fatal(err)
		}
		writePEM(tb, certFile, "CERTIFICATE", der)
		writePEM(tb, keyFile, "PRIVATE KEY", kder)
	}
	f.ServerCert, f.ServerKey = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	f.ClientCert, f.ClientKey = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	leaf(2, "localhost", x509.ExtKeyUsageServerAuth, f.ServerCert, f.ServerKey)
	leaf(3, clientCN, x509.ExtKeyUsageClientAuth, f.ClientCert, f.ClientKey)
	return f
}

// ClientConfig returns a TLS client configuration trusting the CA, with
// the client certificate when withCert.
func (f TLSFiles) ClientConfig(tb testing.TB, withCert bool) *tls.Config {
	tb.Helper()
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if withCert {
		pair, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
		if err != nil {
			tb.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

// ForeignClientConfig returns a TLS client configuration trusting the CA,
// with a client certificate of the same common name signed by another CA:
// a server verifying client certificates must refuse it.
func (f TLSFiles) ForeignClientConfig(tb testing.TB) *tls.Config {
	tb.Helper()
	other := WriteTLS(tb, tb.TempDir(), f.ClientCN)
	cfg := f.ClientConfig(tb, false)
	pair, err := tls.LoadX509KeyPair(other.ClientCert, other.ClientKey)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	return cfg
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func writePEM(tb testing.TB, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
}
