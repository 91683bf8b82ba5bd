// Command grant_server is a Skupper 2.x grant server for one grant, on Go's
// own net/http and crypto/tls, answering as the 2.x wire notes say
// Skupper's does: TLS 1.3 at least, HTTP/1.1 and HTTP/2, POST only, the
// statuses and bodies of Skupper's table, checked in Skupper's order. A
// correct redemption gets the bytes of -response (a 200 answer recorded
// from Skupper's own code) with `content-type: text/plain; charset=utf-8`.
//
// At start it makes a CA and a server certificate for 127.0.0.1 (ECDSA
// P-256), listens on 127.0.0.1 (any free port) and writes an AccessToken
// file for the grant, in the layout Skupper writes, to -token. Then it
// prints "ready" and, for every request, one JSON line: method, path,
// protocol, TLS version, the `name` and `subject` headers and the status
// it answered. It stops when its standard input closes.
//
// Only the standard library (Go 1.19): the test builds it with `go build`.
package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

type seen struct {
	Method  string `json:"method"`
	Path    string `json:"path"`
	Proto   string `json:"proto"`
	TLS     string `json:"tls"`
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Status  int    `json:"status"`
}

func main() {
	responseFile := flag.String("response", "", "the 200 answer's body")
	tokenFile := flag.String("token", "", "where to write the AccessToken")
	grantID := flag.String("grant", "4a5e8f2c-9b1d-4c3e-8f7a-6b5c4d3e2f1a", "the grant id (the URL's path)")
	name := flag.String("name", "my-link", "the AccessToken's name")
	code := flag.String("code", "kq9Jd8sPzW3xV2mNbT6yHcRf", "the grant's code")
	uses := flag.Int("uses", 1, "redemptions allowed")
	flag.Parse()

	response, err := os.ReadFile(*responseFile)
	if err != nil {
		fail("reading the response: %v", err)
	}
	caPEM, cert := certificates()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listening: %v", err)
	}
	url := fmt.Sprintf("https://%s/%s", listener.Addr(), *grantID)
	if err := os.WriteFile(*tokenFile, []byte(accessToken(*name, caPEM, *code, url)), 0o600); err != nil {
		fail("writing the token: %v", err)
	}

	var mu sync.Mutex
	left := *uses
	out := json.NewEncoder(os.Stdout)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := answer(w, r, func(body []byte) (int, string) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.URL.Path != "/"+*grantID:
				return http.StatusNotFound, "No such claim"
			case left <= 0:
				return http.StatusNotFound, "No such access granted"
			case string(body) != *code:
				return http.StatusForbidden, "Redemption of access token refused"
			}
			left--
			return http.StatusOK, ""
		}, response)
		mu.Lock()
		defer mu.Unlock()
		version := ""
		if r.TLS != nil && r.TLS.Version == tls.VersionTLS13 {
			version = "TLS 1.3"
		}
		_ = out.Encode(seen{
			Method:  r.Method,
			Path:    r.URL.Path,
			Proto:   r.Proto,
			TLS:     version,
			Name:    r.Header.Get("name"),
			Subject: r.Header.Get("subject"),
			Status:  status,
		})
	})
	server := &http.Server{
		Handler:   handler,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
	}
	go func() {
		_ = server.ServeTLS(listener, "", "")
	}()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	_ = server.Close()
}

// answer checks the request in Skupper's order and writes the answer;
// decide says, for a readable POST body, what to answer.
func answer(w http.ResponseWriter, r *http.Request, decide func([]byte) (int, string), ok []byte) int {
	if r.Method != http.MethodPost {
		return plain(w, http.StatusMethodNotAllowed, "Only POST is supported")
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return plain(w, http.StatusBadRequest, "Request body not valid")
	}
	status, text := decide(body)
	if status != http.StatusOK {
		return plain(w, status, text)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(ok)
	return http.StatusOK
}

func plain(w http.ResponseWriter, status int, text string) int {
	http.Error(w, text, status)
	return status
}

// certificates makes a CA and a server certificate for 127.0.0.1 signed by
// it: the CA's PEM and the server's TLS certificate.
func certificates() (string, tls.Certificate) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		fail("making a key: %v", err)
	}
	now := time.Now()
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "skupper-grant-server-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		fail("making the CA: %v", err)
	}
	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		fail("making a key: %v", err)
	}
	serverTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "skupper-grant-server"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	serverDER, err := x509.CreateCertificate(rand.Reader, serverTemplate, caTemplate, &serverKey.PublicKey, caKey)
	if err != nil {
		fail("making the server certificate: %v", err)
	}
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	return caPEM, tls.Certificate{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}
}

// accessToken is the AccessToken file Skupper's `token issue` writes.
func accessToken(name, caPEM, code, url string) string {
	var b strings.Builder
	b.WriteString("apiVersion: skupper.io/v2alpha1\nkind: AccessToken\nmetadata:\n  name: " + name + "\nspec:\n  ca: |\n")
	for _, line := range strings.Split(strings.TrimSuffix(caPEM, "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	b.WriteString("  code: " + code + "\n  linkCost: 1\n  url: " + url + "\n")
	return b.String()
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "grant_server: "+format+"\n", args...)
	os.Exit(1)
}
