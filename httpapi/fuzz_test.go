package httpapi

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// Request bodies: any bytes decode or give a Matrix error (M_NOT_JSON or
// M_BAD_JSON, 400), never a panic or another error.
func FuzzDecodeBytes(f *testing.F) {
	for _, seed := range []string{`{}`, `{"a":1}`, ``, `[]`, `null`, `"s"`, `{"type":5}`, `{"auth":{"type":"m.login.password"}}`, "\xff\xfe", `{"a":{"b":{"c":[1,2,{"d":null}]}}}`,
		`{"a":"\ud800"}`, `{"a":"\ud83d\ude00"}`, `{"a":"\\ud800"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v struct {
			Type string            `json:"type"`
			Auth map[string]any    `json:"auth"`
			N    *int              `json:"n"`
			Raw  json.RawMessage   `json:"raw"`
			M    map[string]string `json:"m"`
		}
		err := DecodeBytes(b, &v)
		if err == nil {
			// What is accepted is valid UTF-8 text, whatever encoding/json allows.
			if !ValidText(b) {
				t.Fatalf("%q accepted: not valid UTF-8 JSON text", b)
			}
			return
		}
		var me *Error
		if !errors.As(err, &me) || statusOf(me) != 400 || (me.Code != "M_NOT_JSON" && me.Code != "M_BAD_JSON") {
			t.Fatalf("%q: %v", b, err)
		}
	})
}

func TestBodyShapeLimits(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)
	var v map[string]any
	if err := DecodeBytes([]byte(deep), &v); err == nil || err.(*Error).Code != "M_BAD_JSON" {
		t.Fatalf("40 levels: %v", err)
	}
	many := "{" + strings.Repeat(`"k":1,`, 20000) + `"k":1}`
	if err := DecodeBytes([]byte(many), &v); err == nil {
		t.Fatal("20,001 keys accepted")
	}
	ok := `{"a":{"b":[1,2,{"c":"x:y{[\"]"}]}}`
	if err := DecodeBytes([]byte(ok), &v); err != nil {
		t.Fatalf("ordinary body: %v", err)
	}
	if d, k := shape([]byte(ok)); d != 4 || k != 3 {
		t.Fatalf("shape %d %d", d, k)
	}
}
