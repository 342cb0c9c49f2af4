package engage

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/net/html"
)

// RewriteHTML returns doc with its links tracked, issued at issued (see
// UnsubscribeURL):
//
//   - every <a href> whose target is an absolute http or https URL becomes
//     a click link (ClickURL); other hrefs (mailto:, tel:, #anchors,
//     relative ones) and links this signer made (the unsubscribe link, a
//     click link from an earlier rewrite) are left alone;
//   - an open pixel, <img src="..." width="1" height="1" alt=""
//     style="display:none">, goes before the first </body>, or at the end
//     when there is none, unless doc already holds this signer's pixel.
//
// Everything else is kept byte for byte: the document is read with the
// HTML5 tokenizer (so links in comments, <script> or <style> are not
// touched) and only the href values are replaced. Links inside Outlook's
// conditional comments (<!--[if mso]>) are comments, and are not tracked.
// The error is the tokenizer's, for input it cannot read.
func (s *Signer) RewriteHTML(doc string, l Link, issued time.Time) (string, error) {
	z := html.NewTokenizer(strings.NewReader(doc))
	var out strings.Builder
	out.Grow(len(doc) + 1024)
	insertAt, hasPixel := -1, false
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if err := z.Err(); err != io.EOF {
				return "", fmt.Errorf("engage: reading the HTML: %w", err)
			}
			out.Write(z.Raw())
			break
		}
		switch tt {
		case html.StartTagToken, html.SelfClosingTagToken:
			// TagName and TagAttr lower-case and unescape in the
			// tokenizer's buffer: copy the raw bytes first.
			raw := bytes.Clone(z.Raw())
			name, _ := z.TagName()
			switch string(name) {
			case "a":
				raw = s.rewriteAnchor(z, raw, l, issued)
			case "img":
				if src, ok := attr(z, "src"); ok && strings.HasPrefix(trimSpace(src), s.base+"/e/o/") {
					hasPixel = true
				}
			}
			out.Write(raw)
		case html.EndTagToken:
			raw := bytes.Clone(z.Raw())
			if name, _ := z.TagName(); string(name) == "body" && insertAt < 0 {
				insertAt = out.Len()
			}
			out.Write(raw)
		default:
			out.Write(z.Raw())
		}
	}
	if hasPixel {
		return out.String(), nil
	}
	pixel := `<img src="` + html.EscapeString(s.PixelURL(l, issued)) + `" width="1" height="1" alt="" style="display:none">`
	res := out.String()
	if insertAt < 0 {
		return res + pixel, nil
	}
	return res[:insertAt] + pixel + res[insertAt:], nil
}

// rewriteAnchor returns the raw <a> tag with its href replaced by a click
// link, or raw as it is when the href is not to be tracked.
func (s *Signer) rewriteAnchor(z *html.Tokenizer, raw []byte, l Link, issued time.Time) []byte {
	var keys []string
	href, hasHref := "", false
	for more := true; more; {
		var k, v []byte
		k, v, more = z.TagAttr()
		if k == nil {
			break
		}
		keys = append(keys, string(k))
		if string(k) == "href" {
			href, hasHref = string(v), true
		}
	}
	if !hasHref {
		return raw
	}
	target := trimSpace(href)
	if s.ownLink(target) || checkTarget(target) != nil {
		return raw
	}
	click, err := s.ClickURL(l, target, issued)
	if err != nil {
		return raw
	}
	value := `"` + html.EscapeString(click) + `"`
	spans := scanAttrs(raw)
	if len(spans) != len(keys) {
		return rebuildAnchor(raw, value)
	}
	for i, sp := range spans {
		if asciiLower(raw[sp.key[0]:sp.key[1]]) != keys[i] {
			return rebuildAnchor(raw, value)
		}
	}
	for _, sp := range spans {
		if asciiLower(raw[sp.key[0]:sp.key[1]]) != "href" {
			continue
		}
		start, end := sp.val[0], sp.val[1]
		if sp.quoted {
			start, end = start-1, end+1 // replace the quotes too
		}
		if !sp.hasVal || end > len(raw) {
			break
		}
		var b bytes.Buffer
		b.Grow(len(raw) + len(value))
		b.Write(raw[:start])
		b.WriteString(value)
		b.Write(raw[end:])
		return b.Bytes()
	}
	return rebuildAnchor(raw, value)
}

// rebuildAnchor writes the raw <a> tag anew from the attributes a fresh
// tokenizer reads in it, with value (quoted and escaped) as the href. It
// is the safety net for a tag the attribute scanner does not read as the
// tokenizer does (none is known).
func rebuildAnchor(raw []byte, value string) []byte {
	z := html.NewTokenizer(bytes.NewReader(raw))
	tt := z.Next()
	if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
		return raw
	}
	var b bytes.Buffer
	b.WriteString("<a")
	for more := true; more; {
		var k, v []byte
		k, v, more = z.TagAttr()
		if k == nil {
			break
		}
		b.WriteByte(' ')
		b.Write(k)
		b.WriteByte('=')
		if string(k) == "href" {
			b.WriteString(value)
		} else {
			b.WriteString(`"` + html.EscapeString(string(v)) + `"`)
		}
	}
	if tt == html.SelfClosingTagToken {
		b.WriteString("/")
	}
	b.WriteString(">")
	return b.Bytes()
}

// attr returns the value of the current tag's attribute key.
func attr(z *html.Tokenizer, key string) (string, bool) {
	for more := true; more; {
		var k, v []byte
		k, v, more = z.TagAttr()
		if k == nil {
			break
		}
		if string(k) == key {
			return string(v), true
		}
	}
	return "", false
}

// asciiLower returns an attribute name as the tokenizer does: NUL bytes
// replaced by U+FFFD and ASCII letters lower-cased (strings.ToLower would
// also change other letters, and invalid UTF-8).
func asciiLower(b []byte) string {
	out := bytes.ReplaceAll(b, []byte{0}, []byte("\ufffd"))
	for i, c := range out {
		if 'A' <= c && c <= 'Z' {
			out[i] = c + 'a' - 'A'
		}
	}
	return string(out)
}

// trimSpace trims ASCII whitespace, as browsers do around URLs.
func trimSpace(s string) string { return strings.Trim(s, " \t\n\r\f") }

// attrSpan locates one attribute in a raw tag: key and value as byte
// ranges; quoted says the value sits inside quotes (which the range
// excludes).
type attrSpan struct {
	key, val [2]int
	hasVal   bool
	quoted   bool
}

// scanAttrs finds the attributes of the raw start tag, first occurrence of
// each key only, reading exactly as golang.org/x/net/html's tokenizer does
// (readTag, readTagAttrKey, readTagAttrVal), which tells only the keys and
// unescaped values, not where they are.
func scanAttrs(raw []byte) []attrSpan {
	n := len(raw)
	i := 2 // past "<" and the tag name's first byte
	isSpace := func(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' }
	skipSpace := func() {
		for i < n && isSpace(raw[i]) {
			i++
		}
	}
	// The tag name.
	for i < n {
		c := raw[i]
		i++
		if isSpace(c) {
			break
		}
		if c == '/' || c == '>' {
			i--
			break
		}
	}
	skipSpace()
	var spans []attrSpan
	seen := map[string]bool{}
	for i < n {
		c := raw[i]
		i++
		if c == '>' {
			break
		}
		i--
		var sp attrSpan
		// The key.
		sp.key[0] = i
		for {
			if i >= n {
				sp.key[1] = i
				break
			}
			c := raw[i]
			i++
			if c == '=' && sp.key[0]+1 == i {
				continue
			}
			if c == '=' || isSpace(c) || c == '/' || c == '>' {
				i--
				sp.key[1] = i
				break
			}
		}
		// The value.
		sp.val = [2]int{i, i}
		func() {
			skipSpace()
			if i >= n {
				return
			}
			c := raw[i]
			i++
			if c == '/' {
				return
			}
			if c != '=' {
				i--
				return
			}
			skipSpace()
			if i >= n {
				return
			}
			q := raw[i]
			i++
			switch q {
			case '>':
				i--
				return
			case '\'', '"':
				sp.hasVal, sp.quoted = true, true
				sp.val[0] = i
				for {
					if i >= n {
						sp.val[1] = i
						sp.quoted = false // unterminated: nothing to replace safely
						sp.hasVal = false
						return
					}
					c := raw[i]
					i++
					if c == q {
						sp.val[1] = i - 1
						return
					}
				}
			default:
				sp.hasVal = true
				sp.val[0] = i - 1
				for {
					if i >= n {
						sp.val[1] = i
						return
					}
					c := raw[i]
					i++
					if isSpace(c) {
						sp.val[1] = i - 1
						return
					}
					if c == '>' {
						i--
						sp.val[1] = i
						return
					}
				}
			}
		}()
		key := asciiLower(raw[sp.key[0]:sp.key[1]])
		if sp.key[0] != sp.key[1] && !seen[key] {
			spans = append(spans, sp)
			seen[key] = true
		}
		skipSpace()
	}
	return spans
}
