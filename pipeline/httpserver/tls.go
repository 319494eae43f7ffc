package httpserver

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// ServerTLS returns the tls.Config of a validated, enabled c. The
// certificate is read again at a handshake when its file or its key's has
// changed since the last read, so a renewed certificate is served without
// a restart; a renewal that does not load keeps the last good one.
func ServerTLS(c TLSConfig) (*tls.Config, error) {
	cat, ok := clientAuthTypes[c.ClientAuthType]
	if !ok {
		return nil, fmt.Errorf("unknown client_auth_type %q", c.ClientAuthType)
	}
	minVersion, ok := tlsVersions[c.MinVersion]
	if !ok {
		return nil, fmt.Errorf("unknown min_version %q", c.MinVersion)
	}
	kp := &keyPair{cert: c.CertFile, key: c.KeyFile}
	kp.stamp = [2]fileStamp{stampOf(kp.cert), stampOf(kp.key)}
	if err := kp.load(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:     minVersion,
		ClientAuth:     cat,
		GetCertificate: kp.get,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	if c.ClientCAFile != "" {
		pool, err := loadCAs(c.ClientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
	}
	return cfg, nil
}

// TLSListener returns l serving the TLS of c, or l itself when c is off.
func TLSListener(l net.Listener, c TLSConfig) (net.Listener, error) {
	if !c.Enabled() {
		return l, nil
	}
	cfg, err := ServerTLS(c)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(l, cfg), nil
}

// keyPair is a certificate and key read from files, read again when
// either file's modification time or size changes.
type keyPair struct {
	cert, key string

	mu    sync.Mutex
	stamp [2]fileStamp
	pair  *tls.Certificate
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}
}

func (k *keyPair) load() error {
	pair, err := tls.LoadX509KeyPair(k.cert, k.key)
	if err != nil {
		return fmt.Errorf("cannot load the certificate %s with key %s: %w", k.cert, k.key, err)
	}
	k.pair = &pair
	return nil
}

func (k *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if st := [2]fileStamp{stampOf(k.cert), stampOf(k.key)}; st != k.stamp {
		if k.load() == nil {
			k.stamp = st
		}
	}
	return k.pair, nil
}
