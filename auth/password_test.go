package auth

import (
	"strings"
	"testing"
)

func TestPasswordHash(t *testing.T) {
	long := strings.Repeat("long passphrase ", 20) // past bcrypt's 72 bytes
	for _, pw := range []string{"correct horse", "", "ünïcödé 密码", long} {
		h, err := HashPassword(pw)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(h, "$argon2id$v=19$") || strings.Contains(h, pw) && pw != "" {
			t.Fatalf("hash %q", h)
		}
		if ok, err := CheckPassword(h, pw); !ok || err != nil {
			t.Fatalf("%q does not match its hash: %v", pw, err)
		}
		if ok, _ := CheckPassword(h, pw+"x"); ok {
			t.Fatalf("%q matched a different password", pw)
		}
	}
	if ok, _ := CheckPassword(long[:len(long)-1]+"!", long); ok {
		t.Fatal("long passwords compared by prefix")
	}
	h1, _ := HashPassword("same")
	h2, _ := HashPassword("same")
	if h1 == h2 {
		t.Fatal("hashes are not salted")
	}
	for _, bad := range []string{"", "plain", "$2b$10$abc", "$argon2id$v=19$m=x$a$b", "$argon2id$v=18$m=1,t=1,p=1$AA$AA"} {
		if _, err := CheckPassword(bad, "x"); err == nil {
			t.Fatalf("malformed hash %q accepted", bad)
		}
	}
}

func TestTokens(t *testing.T) {
	a, b := newToken("rdt_"), newToken("rdt_")
	if a == b || len(a) < 40 {
		t.Fatalf("tokens %q %q", a, b)
	}
	if string(HashToken(a)) == string(HashToken(b)) || len(HashToken(a)) != 32 {
		t.Fatal("token hashes")
	}
}
