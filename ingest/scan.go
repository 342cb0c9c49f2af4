package ingest

import (
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/nudge-dev/nudge/api"
)

// scanner is a one-pass JSON validator over a request body. It checks the
// grammar of RFC 8259 exactly as encoding/json does, UTF-8 inside strings,
// and nesting depth, and reports the byte offset of the first fault. The
// Segment parser (segment.go) walks the body with it.
type scanner struct {
	buf      []byte
	pos      int
	maxDepth int
	// where the scan is, to name the field in errors: the key (in buf) of
	// the top-level member of batch item idx (or of the body when idx < 0)
	// being scanned; key.end == 0 when none.
	key    span
	keyEsc bool
	idx    int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *scanner) ws() {
	for s.pos < len(s.buf) && isSpace(s.buf[s.pos]) {
		s.pos++
	}
}

// keyName is the unquoted s.key.
func (s *scanner) keyName() string {
	if !s.key.ok() {
		return ""
	}
	if s.keyEsc {
		return unquote(s.buf[s.key.start:s.key.end])
	}
	return string(s.buf[s.key.start:s.key.end])
}

// where names the field being scanned, for errors.
func (s *scanner) where() string {
	if !s.key.ok() {
		return ""
	}
	return fieldName(s.idx, s.keyName())
}

// syntaxErr reports the byte at s.pos as unexpected (invalid_utf8 when it
// starts no valid UTF-8 sequence).
func (s *scanner) syntaxErr(context string) *api.Error {
	return s.syntaxErrAt(s.pos, context)
}

func (s *scanner) syntaxErrAt(pos int, context string) *api.Error {
	off := " at byte offset " + strconv.Itoa(pos)
	if pos >= len(s.buf) {
		return api.NewError(api.CodeInvalidJSON, s.where(), "unexpected end of JSON input"+off)
	}
	c := s.buf[pos]
	if c >= utf8.RuneSelf {
		if r, size := utf8.DecodeRune(s.buf[pos:]); r == utf8.RuneError && size <= 1 {
			return api.NewError(api.CodeInvalidUTF8, s.where(), "invalid UTF-8"+off)
		}
	}
	msg := "invalid character " + quoteChar(s.buf[pos:]) + " " + context + off
	return api.NewError(api.CodeInvalidJSON, s.where(), msg)
}

// quoteShort quotes client text for an error message, cut to 64 bytes.
func quoteShort(v string) string {
	const max = 64
	if len(v) <= max {
		return strconv.Quote(v)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return strconv.Quote(v[:cut]) + "..."
}

func quoteChar(b []byte) string {
	r, _ := utf8.DecodeRune(b)
	return strconv.QuoteRune(r)
}

func (s *scanner) tooDeep(field string) *api.Error {
	return api.NewError(api.CodeTooDeep, field, "objects and arrays nest deeper than "+strconv.Itoa(s.maxDepth)+" levels at byte offset "+strconv.Itoa(s.pos))
}

// value scans any JSON value at s.pos, enclosed in depth containers.
func (s *scanner) value(depth int) *api.Error {
	if s.pos >= len(s.buf) {
		return s.syntaxErr("looking for a value")
	}
	switch c := s.buf[s.pos]; c {
	case '{':
		depth++
		if depth > s.maxDepth {
			return s.tooDeep(s.where())
		}
		if s.open('}') {
			return nil
		}
		for {
			if s.pos >= len(s.buf) || s.buf[s.pos] != '"' {
				return s.syntaxErr("looking for an object key")
			}
			if _, _, _, e := s.str(); e != nil {
				return e
			}
			s.ws()
			if s.pos >= len(s.buf) || s.buf[s.pos] != ':' {
				return s.syntaxErr("after an object key")
			}
			s.pos++
			s.ws()
			if e := s.value(depth); e != nil {
				return e
			}
			done, e := s.objectNext()
			if e != nil || done {
				return e
			}
		}
	case '[':
		depth++
		if depth > s.maxDepth {
			return s.tooDeep(s.where())
		}
		if s.open(']') {
			return nil
		}
		for {
			if e := s.value(depth); e != nil {
				return e
			}
			if done, e := s.arrayNext("after an array element"); e != nil || done {
				return e
			}
		}
	case '"':
		_, _, _, e := s.str()
		return e
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return s.number()
		}
		return s.syntaxErr("looking for a value")
	}
}

func (s *scanner) literal(lit string) *api.Error {
	for i := 0; i < len(lit); i++ {
		if s.pos >= len(s.buf) || s.buf[s.pos] != lit[i] {
			return s.syntaxErr("in literal " + lit)
		}
		s.pos++
	}
	return nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() *api.Error {
	b, i := s.buf, s.pos
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return s.syntaxErrAt(i, "in numeric literal")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return s.syntaxErrAt(i, "after decimal point in numeric literal")
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return s.syntaxErrAt(i, "in exponent of numeric literal")
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
		// Valid JSON, but no consumer could decode it: refuse numbers
		// beyond float64's range (only an exponent can get there).
		if _, err := strconv.ParseFloat(string(b[s.pos:i]), 64); err != nil {
			return api.NewError(api.CodeInvalidNumber, s.where(), "number "+quoteShort(string(b[s.pos:i]))+" at byte offset "+strconv.Itoa(s.pos)+" is out of range")
		}
	}
	s.pos = i
	return nil
}

// plain marks the bytes a string may hold as they are: printable ASCII but
// '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return
}()

// str scans a string at s.pos (its opening quote) and returns the extent of
// its content, and whether it holds escapes.
func (s *scanner) str() (start, end int, esc bool, e *api.Error) {
	b := s.buf
	i := s.pos + 1
	start = i
	for {
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			return 0, 0, false, s.syntaxErrAt(i, "in string literal")
		}
		switch c := b[i]; {
		case c == '"':
			s.pos = i + 1
			return start, i, esc, nil
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				return 0, 0, false, s.syntaxErrAt(i+1, "in string escape code")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for j := i + 2; j < i+6; j++ {
					if j >= len(b) || !isHex(b[j]) {
						return 0, 0, false, s.syntaxErrAt(j, "in \\u hexadecimal character escape")
					}
				}
				i += 6
			default:
				return 0, 0, false, s.syntaxErrAt(i+1, "in string escape code")
			}
		case c < 0x20:
			return 0, 0, false, s.syntaxErrAt(i, "in string literal")
		default: // non-ASCII
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				return 0, 0, false, api.NewError(api.CodeInvalidUTF8, s.where(), "invalid UTF-8 at byte offset "+strconv.Itoa(i))
			}
			i += size
		}
	}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// unquote decodes the content of a string validated by str, with the
// semantics of encoding/json (a lone surrogate becomes U+FFFD).
func unquote(b []byte) string {
	return string(appendUnquote(make([]byte, 0, len(b)), b))
}

// appendUnquote appends the decoded content of a string validated by str.
func appendUnquote(out, b []byte) []byte {
	for i := 0; i < len(b); {
		c := b[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch b[i+1] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(b[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(b) && b[i] == '\\' && b[i+1] == 'u' {
					if dec := utf16.DecodeRune(r, hex4(b[i+2:])); dec != unicode.ReplacementChar {
						out = utf8.AppendRune(out, dec)
						i += 6
						continue
					}
				}
				r = unicode.ReplacementChar
			}
			out = utf8.AppendRune(out, r)
			continue
		default: // '"', '\\', '/'
			out = append(out, b[i+1])
		}
		i += 2
	}
	return out
}

// open moves past an object's or array's opening bracket and reports
// whether closer follows at once (an empty container, also consumed).
func (s *scanner) open(closer byte) (empty bool) {
	s.pos++
	s.ws()
	if s.pos < len(s.buf) && s.buf[s.pos] == closer {
		s.pos++
		return true
	}
	return false
}

// objectNext moves past the ',' or '}' after an object member; done
// reports the end of the object.
func (s *scanner) objectNext() (done bool, e *api.Error) {
	return s.next('}', "after an object member")
}

// arrayNext moves past the ',' or ']' after an array element; done reports
// the end of the array. context names the place in a syntax error.
func (s *scanner) arrayNext(context string) (done bool, e *api.Error) {
	return s.next(']', context)
}

func (s *scanner) next(closer byte, context string) (done bool, e *api.Error) {
	s.ws()
	if s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ',':
			s.pos++
			s.ws()
			return false, nil
		case closer:
			s.pos++
			return true, nil
		}
	}
	return false, s.syntaxErr(context)
}
