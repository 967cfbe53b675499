package search

import (
	"strings"
	"testing"
	"unicode"

	"github.com/fmtbank/cmts/store"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"plain", "peter", "peter"},
		{"upper", "PETER James", "peter james"},
		{"umlaut", "Müller", "muller"},
		{"acute", "José", "jose"},
		{"decomposed input", "Jose\u0301", "jose"},
		{"several accents", "Bénédicte du Marché", "benedicte du marche"},
		{"sharp s folds", "Straße", "strasse"},
		{"stroke letters", "Łódź Søren Đorđe", "lodz soren dorde"},
		{"ligature", "Æsir Œuvre", "aesir oeuvre"},
		{"full-width letters", "ＡＢＣ", "abc"},
		{"full-width CD", "ＣＤ", "cd"},
		{"full-width digits", "１２３４５", "12345"},
		{"ideographic space", "王\u3000小明", "王 小明"},
		{"white space collapsed", "  Peter \t\n  James  ", "peter james"},
		{"chinese unchanged", "张三", "张三"},
		{"chinese with latin", "王小明 Wang", "王小明 wang"},
		{"full-width in chinese text", "李雷（ＬＩ）", "李雷(li)"},
		{"japanese voicing kept", "ガ", "ガ"},
		{"half-width katakana to full", "ｶﾞ", "ガ"},
		{"greek accent", "Ἀθῆναι", "αθηναι"},
		{"cyrillic", "Пётр", "петр"},
		{"ascii controls kept", "a\x01B", "a\x01b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Normalize(tt.in); got != tt.want {
				t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if again := Normalize(tt.want); again != tt.want {
				t.Errorf("Normalize is not idempotent on %q: %q", tt.want, again)
			}
		})
	}
}

// TestChinesePrefix checks that prefix search on Chinese names works
// character by character, on the entries Entries writes and the text Parse
// searches for.
func TestChinesePrefix(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	patients := map[string]string{
		"zhangsan":   `{"resourceType":"Patient","id":"zhangsan","name":[{"text":"张三"}]}`,
		"wangxm":     `{"resourceType":"Patient","id":"wangxm","name":[{"family":"王","given":["小明"]}]}`,
		"wangspaced": `{"resourceType":"Patient","id":"wangspaced","name":[{"text":"王 小红"}]}`,
		"fullwidth":  `{"resourceType":"Patient","id":"fullwidth","name":[{"family":"ＣＤ","given":["Ｍａｒｉａ"]}]}`,
	}
	index := map[string][]store.IndexEntry{}
	for id, body := range patients {
		es, err := e.Entries("Patient", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		index[id] = es
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"张", []string{"zhangsan"}},
		{"张三", []string{"zhangsan"}},
		{"王", []string{"wangspaced", "wangxm"}},
		{"王小", []string{"wangspaced", "wangxm"}},
		{"王小明", []string{"wangxm"}},
		{"小明", []string{"wangxm"}},
		{"王 小", []string{"wangspaced"}},
		{"cd", []string{"fullwidth"}},
		{"ＣＤ", []string{"fullwidth"}},
		{"maria", []string{"fullwidth"}},
		{"李", nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			s, err := e.Parse("Patient", map[string][]string{"name": {tt.query}}, true)
			if err != nil {
				t.Fatal(err)
			}
			leaf, ok := s.Filter.(store.String)
			if !ok || leaf.Mode != store.Prefix {
				t.Fatalf("filter %#v, want a prefix String", s.Filter)
			}
			var got []string
			for _, id := range []string{"fullwidth", "wangspaced", "wangxm", "zhangsan"} {
				for _, en := range index[id] {
					if en.Param == "name" && strings.HasPrefix(en.Value, leaf.Text) {
						got = append(got, id)
						break
					}
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("name=%s matches %v, want %v", tt.query, got, tt.want)
			}
		})
	}
}

// TestNormalizeLeavesIdeographs backs isPlainLower's shortcut: the full
// normalisation leaves every rune it takes for a CJK Unified Ideograph as it is, alone and
// among plain lower-case text.
func TestNormalizeLeavesIdeographs(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !isUnifiedIdeograph(r) {
			continue
		}
		for _, s := range []string{string(r), "ab " + string(r) + string(r) + " c1"} {
			if got := normalizeSlowly(s); got != s {
				t.Fatalf("normalizing %q gives %q", s, got)
			}
		}
	}
}
