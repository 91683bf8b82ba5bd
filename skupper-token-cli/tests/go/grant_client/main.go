// Command grant_client redeems a Skupper 2.x AccessToken the way a Skupper
// 2.x site does, with Go's own net/http and crypto/tls configured as
// Skupper's client is:
// trust only the token's CA, TLS 1.3 at least, a 10 s timeout, no
// redirects, POST the code with the headers `name` and `subject`. It then
// checks a 200 answer with Go's crypto/x509 and crypto/tls: the Secret's
// certificate chains to the Secret's ca.crt for client authentication,
// names the subject, and its private key belongs to it.
//
// It prints one JSON object on standard output and exits 0 whenever it got
// an HTTP answer (whatever its status); 1 when it did not.
//
// Only the standard library (Go 1.19): the test builds it with `go build`.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

type secret struct {
	Name     string   `json:"name"`
	CertCN   string   `json:"cert_cn"`
	ChainOK  bool     `json:"chain_ok"`
	ChainErr string   `json:"chain_error,omitempty"`
	KeyOK    bool     `json:"key_ok"`
	KeyErr   string   `json:"key_error,omitempty"`
	KeyType  string   `json:"key_type"`
	DNSNames []string `json:"dns_names"`
	IPs      []string `json:"ips"`
}

type link struct {
	Name           string `json:"name"`
	TLSCredentials string `json:"tls_credentials"`
	Endpoints      int    `json:"endpoints"`
}

type result struct {
	Status      int     `json:"status"`
	Proto       string  `json:"proto"`
	TLS         string  `json:"tls"`
	ContentType string  `json:"content_type"`
	Body        string  `json:"body,omitempty"`
	Documents   int     `json:"documents"`
	Secret      *secret `json:"secret,omitempty"`
	Links       []link  `json:"links"`
}

func main() {
	url := flag.String("url", "", "the AccessToken's spec.url")
	caFile := flag.String("ca", "", "a file holding the AccessToken's spec.ca (PEM)")
	code := flag.String("code", "", "the AccessToken's spec.code")
	name := flag.String("name", "", "the AccessToken's metadata.name (header name)")
	subject := flag.String("subject", "", "the redeeming site's id (header subject)")
	h2 := flag.Bool("h2", false, "offer HTTP/2 as well (Skupper's client does not)")
	flag.Parse()

	ca, err := os.ReadFile(*caFile)
	if err != nil {
		fail("reading the CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		fail("the CA file holds no certificate")
	}
	transport := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		ForceAttemptHTTP2: *h2,
	}
	client := &http.Client{
		Transport: transport,
		Timeout:   10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	request, err := http.NewRequest(http.MethodPost, *url, bytes.NewReader([]byte(*code)))
	if err != nil {
		fail("making the request: %v", err)
	}
	request.Header.Add("name", *name)
	request.Header.Add("subject", *subject)
	response, err := client.Do(request)
	if err != nil {
		fail("redeeming: %v", err)
	}
	defer response.Body.Close()
	body, err := io.ReadAll(response.Body)
	if err != nil {
		fail("reading the answer: %v", err)
	}
	out := result{
		Status:      response.StatusCode,
		Proto:       response.Proto,
		ContentType: response.Header.Get("Content-Type"),
		Links:       []link{},
	}
	if response.TLS != nil {
		out.TLS = tlsVersion(response.TLS.Version)
	}
	if response.StatusCode != http.StatusOK {
		out.Body = string(body)
	} else {
		readStream(string(body), &out)
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fail("writing the result: %v", err)
	}
}

// readStream reads the YAML stream of a 200 answer: the Secret first, then
// the Links. Only what the checks need is read, line by line: the stream's
// layout is Skupper's (two-space indents, base64 values on one line).
func readStream(stream string, out *result) {
	docs := strings.Split(strings.TrimPrefix(stream, "---\n"), "\n---\n")
	out.Documents = len(docs)
	for i, doc := range docs {
		fields := map[string]string{}
		endpoints := 0
		for _, line := range strings.Split(doc, "\n") {
			if strings.HasPrefix(line, "  - ") {
				endpoints++
			}
			trimmed := strings.TrimSpace(line)
			if k, v, ok := strings.Cut(trimmed, ": "); ok {
				if _, seen := fields[k]; !seen {
					fields[k] = strings.Trim(v, "\"")
				}
			}
		}
		if i == 0 {
			if fields["kind"] != "Secret" {
				fail("the first document is a %q, not a Secret", fields["kind"])
			}
			out.Secret = checkSecret(fields)
			continue
		}
		if fields["kind"] != "Link" {
			fail("document %d is a %q, not a Link", i+1, fields["kind"])
		}
		out.Links = append(out.Links, link{
			Name:           fields["name"],
			TLSCredentials: fields["tlsCredentials"],
			Endpoints:      endpoints,
		})
	}
}

func checkSecret(fields map[string]string) *secret {
	decode := func(key string) []byte {
		b, err := base64.StdEncoding.DecodeString(fields[key])
		if err != nil {
			fail("the Secret's %s is not base64: %v", key, err)
		}
		return b
	}
	caPEM, certPEM, keyPEM := decode("ca.crt"), decode("tls.crt"), decode("tls.key")
	s := &secret{Name: fields["name"], DNSNames: []string{}, IPs: []string{}}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		fail("the Secret's tls.crt is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		fail("the Secret's tls.crt: %v", err)
	}
	s.CertCN = cert.Subject.CommonName
	s.DNSNames = append(s.DNSNames, cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		s.IPs = append(s.IPs, ip.String())
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		fail("the Secret's ca.crt holds no certificate")
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:     roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		s.ChainErr = err.Error()
	} else {
		s.ChainOK = true
	}
	if pair, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		s.KeyErr = err.Error()
	} else {
		s.KeyOK = true
		s.KeyType = fmt.Sprintf("%T", pair.PrivateKey)
	}
	return s
}

func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLS 1.3"
	case tls.VersionTLS12:
		return "TLS 1.2"
	default:
		return fmt.Sprintf("0x%04x", v)
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "grant_client: "+format+"\n", args...)
	os.Exit(1)
}
