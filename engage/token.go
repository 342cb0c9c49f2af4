package engage

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nudge-dev/nudge"
)

// MinKeySize is the shortest signing key NewSigner takes, in bytes.
const MinKeySize = 32

// DefaultMaxAge is how long open and click links are honoured unless
// Config says otherwise. Unsubscribe links never expire by default.
const DefaultMaxAge = 365 * 24 * time.Hour

// The link kinds, as the token's kind byte.
const (
	kindUnsubscribe byte = 'u'
	kindOpen        byte = 'o'
	kindClick       byte = 'c'
)

const (
	tokenVersion = 1
	macSize      = sha256.Size
	headerSize   = 1 + 1 + 8
	// maxTokenLen bounds an encoded token the handler decodes. Links this
	// long do not work in mail clients anyway (keep them under 2 KB).
	maxTokenLen = 8 << 10
	// maxTargetLen bounds a click target.
	maxTargetLen = 4 << 10
	keyLabel     = "nudge engage link v1"
	b64Alphabet  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)

var b64 = base64.RawURLEncoding.Strict()

// errInvalid is the one answer to every token that fails a check: which
// check failed is not told.
var errInvalid = errors.New("engage: invalid or expired link")

// Signer signs links and verifies them. It is safe for concurrent use.
type Signer struct {
	key  []byte   // derived signing key
	keys [][]byte // derived verification keys: key first, then old ones
	base string   // base URL without a trailing slash
}

// NewSigner returns a signer that signs with key (at least MinKeySize
// bytes, random) and makes links under baseURL, the absolute http or https
// URL the Handler is reachable at from the internet
// ("https://nudge.example.com"). A path in baseURL is kept
// ("https://example.com/nudge" makes "https://example.com/nudge/e/u/..."):
// mount the handler with http.StripPrefix then. Old keys, after a key
// rotation, still verify links signed with them; they never sign.
func NewSigner(key []byte, baseURL string, old ...[]byte) (*Signer, error) {
	if len(key) < MinKeySize {
		return nil, fmt.Errorf("engage: the signing key is %d bytes: it must be at least %d random bytes", len(key), MinKeySize)
	}
	for i, k := range old {
		if len(k) < MinKeySize {
			return nil, fmt.Errorf("engage: old key %d is %d bytes: it must be at least %d random bytes", i, len(k), MinKeySize)
		}
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("engage: base URL %q is not an absolute http or https URL such as https://nudge.example.com", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, fmt.Errorf("engage: base URL %q has a query or a fragment: links are made by appending paths to it", baseURL)
	}
	s := &Signer{key: deriveKey(key), base: strings.TrimRight(u.String(), "/")}
	s.keys = append(s.keys, s.key)
	for _, k := range old {
		s.keys = append(s.keys, deriveKey(k))
	}
	return s, nil
}

func deriveKey(key []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(keyLabel))
	return h.Sum(nil)
}

// UnsubscribeURL returns the one-click unsubscribe link of l, for the
// List-Unsubscribe header and the message body.
//
// Every link carries the time it was issued, which its age is measured
// from. Pass the message's CreatedAt: the same message then gets the same
// links every time it is rendered (after a retry, too), and engine code
// reads no clock.
func (s *Signer) UnsubscribeURL(l Link, issued time.Time) string {
	return s.base + "/e/u/" + s.sign(kindUnsubscribe, l, "", issued)
}

// PixelURL returns the open pixel link of l, issued at issued.
func (s *Signer) PixelURL(l Link, issued time.Time) string {
	return s.base + "/e/o/" + s.sign(kindOpen, l, "", issued) + ".gif"
}

// ClickURL returns a link, issued at issued, that reports a click on
// target and redirects to it. The target must be an absolute http or https
// URL of at most 4 KiB.
func (s *Signer) ClickURL(l Link, target string, issued time.Time) (string, error) {
	if err := checkTarget(target); err != nil {
		return "", err
	}
	return s.base + "/e/c/" + s.sign(kindClick, l, target, issued), nil
}

func checkTarget(target string) error {
	if len(target) > maxTargetLen {
		return fmt.Errorf("engage: the click target is %d bytes, over the limit of %d", len(target), maxTargetLen)
	}
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("engage: the click target is not a URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("engage: the click target is not an absolute http or https URL")
	}
	return nil
}

// ownLink reports whether href is a link this signer made (an unsubscribe
// link, an already rewritten click link).
func (s *Signer) ownLink(href string) bool {
	return strings.HasPrefix(href, s.base+"/e/")
}

func (s *Signer) sign(kind byte, l Link, target string, issued time.Time) string {
	b := make([]byte, 0, 128+len(l.Subject)+len(target))
	b = append(b, tokenVersion, kind)
	b = binary.BigEndian.AppendUint64(b, uint64(issued.Unix()))
	for _, f := range [...]string{l.ProfileID, string(l.Subject), l.Key, l.Journey, l.Step, l.Channel, l.Group, target} {
		b = nudge.AppendString(b, f)
	}
	b = binary.AppendVarint(b, int64(l.Version))
	b = mac(s.key, b)
	return b64.EncodeToString(b)
}

// mac appends the HMAC of b to b.
func mac(key, b []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(b)
	return h.Sum(b)
}

// claims is what a verified token says.
type claims struct {
	link     Link
	target   string
	issuedAt time.Time
}

// parse verifies tok as a token of kind, no older than maxAge at now
// (maxAge <= 0: no limit). Any failure is errInvalid.
func (s *Signer) parse(kind byte, tok string, now time.Time, maxAge time.Duration) (claims, error) {
	if len(tok) > maxTokenLen || len(tok) < b64.EncodedLen(headerSize+macSize) {
		return claims{}, errInvalid
	}
	// The decoder skips \r and \n: refuse anything outside the alphabet
	// so that one token has exactly one spelling.
	for i := 0; i < len(tok); i++ {
		if strings.IndexByte(b64Alphabet, tok[i]) < 0 {
			return claims{}, errInvalid
		}
	}
	b, err := b64.DecodeString(tok)
	if err != nil || len(b) < headerSize+macSize {
		return claims{}, errInvalid
	}
	body, sum := b[:len(b)-macSize], b[len(b)-macSize:]
	ok := false
	for _, k := range s.keys {
		// Clip: mac appends to body, which must not write over sum.
		if hmac.Equal(mac(k, slices.Clip(body))[len(body):], sum) {
			ok = true
			break
		}
	}
	if !ok || body[0] != tokenVersion || body[1] != kind {
		return claims{}, errInvalid
	}
	c := claims{issuedAt: time.Unix(int64(binary.BigEndian.Uint64(body[2:headerSize])), 0)}
	d := nudge.NewDecoder(body[headerSize:])
	var fields [8]string
	for i := range fields {
		fields[i] = d.String()
	}
	v := d.Varint()
	if d.Err() != nil || len(d.Rest()) != 0 || int64(int(v)) != v {
		return claims{}, errInvalid
	}
	c.link = Link{
		ProfileID: fields[0], Key: fields[2], Journey: fields[3], Version: int(v),
		Step: fields[4], Channel: fields[5], Group: fields[6],
	}
	if fields[1] != "" {
		c.link.Subject = []byte(fields[1])
	}
	c.target = fields[7]
	if (kind == kindClick) != (c.target != "") {
		return claims{}, errInvalid
	}
	if kind == kindClick && checkTarget(c.target) != nil {
		return claims{}, errInvalid
	}
	if maxAge > 0 && now.Sub(c.issuedAt) > maxAge {
		return claims{}, errInvalid
	}
	return c, nil
}
