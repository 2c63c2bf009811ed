package streams

import "testing"

// Sync tokens: anything either parses into a token that prints back to
// itself (as parsed), or is refused; nothing panics.
func FuzzParseToken(f *testing.F) {
	for _, seed := range []string{"s1_2_3_4_5_6_7", "s0_0_0_0_0_0_0", "s1", "t5", "", "s_", "s1_2_3_4_5_6_7_8", "s99999999999999999999_0_0_0_0_0_0", "s-1_0_0_0_0_0_0"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		again, err := ParseToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("%q parsed to %+v, printed %q, parsed again to %+v (%v)", s, tok, tok.String(), again, err)
		}
	})
}
