package search

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Normalize is the form in which string parameters are indexed and
// searched, so that matching ignores case, accents, full-width forms and
// spacing (docs/search.md):
//
//  1. Unicode NFKC: full-width letters and digits become ASCII ("Ａ" -> "A",
//     "１２" -> "12"), the ideographic space a space, ligatures letters;
//  2. full Unicode case folding ("Müller" -> "müller", "ß" -> "ss");
//  3. accents removed: NFD, then the combining diacritical marks of the
//     Latin, Greek and Cyrillic scripts are dropped ("müller" -> "muller",
//     "josé" -> "jose"), and ø, ł, đ, æ, œ become o, l, d, ae, oe. Marks of
//     other scripts (the Japanese voicing marks, Indic vowel signs) are kept,
//     as they change the letter rather than accent it;
//  4. runs of white space become one space, and leading and trailing space
//     is removed.
//
// Chinese (and other CJK) text keeps its characters, so a prefix search
// matches character by character ("张" finds "张三").
func Normalize(s string) string {
	if isPlainLower(s) {
		return s
	}
	if isASCII(s) {
		// NFKC and accents leave ASCII alone, and its case folding is
		// lower-casing.
		return collapseLower(s)
	}
	return normalizeSlowly(s)
}

// normalizeSlowly is Normalize by its every step.
func normalizeSlowly(s string) string {
	s = norm.NFKC.String(s)
	// A Caser keeps state, so each call makes its own.
	s = cases.Fold().String(s)
	s = norm.NFD.String(s)
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case isAccent(r):
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if rep, ok := letterFold[r]; ok {
			b.WriteString(rep)
			continue
		}
		b.WriteRune(r)
	}
	return norm.NFC.String(b.String())
}

// isPlainLower reports whether s is already normal: printable ASCII and CJK
// ideographs with no upper-case letters and single inner spaces. Most index
// values of codes and many names pass, and skip the Unicode passes.
func isPlainLower(s string) bool {
	if s == "" {
		return true
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	prevSpace := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			// CJK Unified Ideographs, which every step leaves alone
			// (TestNormalizeLeavesIdeographs): Chinese names and
			// addresses, most of what a registry indexes
			r, size := utf8.DecodeRuneInString(s[i:])
			if !isUnifiedIdeograph(r) {
				return false
			}
			i += size - 1
			prevSpace = false
			continue
		}
		if c < ' ' || c == 0x7f || (c >= 'A' && c <= 'Z') {
			return false
		}
		if c == ' ' {
			if prevSpace {
				return false
			}
			prevSpace = true
		} else {
			prevSpace = false
		}
	}
	return true
}

func isUnifiedIdeograph(r rune) bool { return r >= 0x4e00 && r <= 0x9fff }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// collapseLower lower-cases ASCII text and collapses its white space.
func collapseLower(s string) string {
	b := make([]byte, 0, len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			space = len(b) > 0
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		if space {
			b = append(b, ' ')
			space = false
		}
		b = append(b, c)
	}
	return string(b)
}

// isAccent reports whether r is a combining mark that only accents a Latin,
// Greek or Cyrillic letter.
func isAccent(r rune) bool {
	switch {
	case r >= 0x0300 && r <= 0x036F, // Combining Diacritical Marks
		r >= 0x1AB0 && r <= 0x1AFF, // Combining Diacritical Marks Extended
		r >= 0x1DC0 && r <= 0x1DFF, // Combining Diacritical Marks Supplement
		r >= 0x20D0 && r <= 0x20FF, // Combining Diacritical Marks for Symbols
		r >= 0xFE20 && r <= 0xFE2F: // Combining Half Marks
		return true
	}
	return false
}

// letterFold maps the (lower-case) Latin letters that carry an accent-like
// stroke but do not decompose under NFD.
var letterFold = map[rune]string{
	'ø': "o", 'ł': "l", 'đ': "d", 'ħ': "h", 'æ': "ae", 'œ': "oe", 'ı': "i",
}

// isHan reports whether s contains a Han (Chinese) character.
func isHan(s string) bool {
	for _, r := range s {
		if unicode.Is(unicode.Han, r) {
			return true
		}
	}
	return false
}

// removeSpaces drops every white-space character.
func removeSpaces(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}
