package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// shippedMigrations are the migrations released, with their SHA-256: a
// database at version N ran exactly these, so none may change. A new
// migration is a new file, added here once committed.
var shippedMigrations = map[string]string{
	"001_init.sql":                 "a1ed1bc5a532acd8ac6bb4a3fcf3dbc8c425b976a49eded2a3f93845735c710e",
	"002_sync.sql":                 "11b4ae0ed78e06536458600badc78a6b05522acdcf8293a69b5d4078242f7488",
	"003_e2ee.sql":                 "0a6832c02efd8e0fc543e17ad7aec636837f128579193b21512a7df79df53477",
	"004_dehydrated.sql":           "8e600578aab76666036c5ce3e35a60f372ca8d77f7274b0c86a8dd31e66fa9c2",
	"005_media.sql":                "3d9fd5ab599d0c13c8601f3b595ae500582c05a39ed3d2929319d46cfa9e8a7b",
	"006_admin.sql":                "bb1fd7cec752aa6cb13f43c94cb9b8b9fba9d567125391799228834c4225087a",
	"007_directory.sql":            "c9fcb04f2a1ffd8de8defa6074b68edfe83bad08704ff31553c5a396269c929f",
	"008_relations.sql":            "082b913b0d69afc4e5550740ed553e2fd25bb85b82262fe437465d396ae02496",
	"009_search.sql":               "730d9eca11317230e87047a9712e3da82085984895fefcfaf16a9305e90ca49a",
	"010_pushers.sql":              "4e82095d4e3a9a5a3e97ba01db69f9f2058f5dc757d77c35750da8ba8caa2a39",
	"011_reports.sql":              "003b9e772f1faa40cf8e2aeabd15749f6535dc1f0e494b3d4eed57ab87b8928b",
	"012_threads.sql":              "6a651cd8b59118d7c8dca040396d49e7e84f760dadfefe54ef49cd074095933e",
	"013_delayed.sql":              "7003e46819bd30258c56f099e12f17b461af9f02613764aa754f77a1bd5d395f",
	"014_pusher_devices.sql":       "c83181cd073feb9979c2e085ceb0ac032a6163a6b56426e8f6ee02e6532159b7",
	"015_nonces_in_memory.sql":     "2b7eea3ec51cebab39f6e07e3f3d643bf21033354b47ddf0e4859ca0e5a347ea",
	"016_admin_tools.sql":          "9b1ac7496d3aa85fe6baa0367d71199ffc5dd59627ddb6a858a91072867538e9",
	"017_push_retries.sql":         "b3411b871279bd3a177b87a871cd1eba530fffad8ca9dc2b067338815f614ceb",
	"018_push_actions_compact.sql": "09e51a2ad66c7588fda3a078a93f6347c940042fcda0b8a916667daa057104bf",
	"019_room_bump.sql":            "d39c72595a4cde185ab3b4b1de23b9ecf55e0a6b3c5cd5860e1df359ffa7d08b",
	"020_sso.sql":                  "4916ecd187e8c0596f9c0750bf54c7d16132fcae8ddea14a28330a3497294380",
	"021_oauth.sql":                "12bab2a60d4edfe1e27486102c1ed1569faa4577eb37b6202d52039f4527c029",
	"022_calls.sql":                "7a6f678916c3b5d0c1073cbe210d892396a59b1163954122917500010263e2e7",
	"023_unread_counts.sql":        "5387a2b2fda042e509e63bd4c20ed3aab87992be16728c4f67e1840d050eadde",
	"024_member_counts.sql":        "2cf74c938eabf75716c6282c26cc7b90e3b0e95903b457801f804e43d13c4e19",
	"025_auth_epoch.sql":           "56acdcfad6986b9ef50a8725fda4891eb57951bcdda45ee115cc6e3029144a96",
	"026_sync_epoch.sql":           "71543aa3fc00c7bd5d4962ec987ced27c861775d502df213cc1b6b0144c911cd",
}

// Migrations are append-only: every shipped one is unchanged, and every
// file is shipped (listed above).
func TestMigrationsAppendOnly(t *testing.T) {
	files, err := schemaFS.ReadDir("schema")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(shippedMigrations) {
		t.Errorf("%d migration files, %d listed as shipped: list a new one in shippedMigrations", len(files), len(shippedMigrations))
	}
	for _, f := range files {
		b, err := schemaFS.ReadFile("schema/" + f.Name())
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if want, ok := shippedMigrations[f.Name()]; !ok {
			t.Errorf("%s is not listed as shipped", f.Name())
		} else if hex.EncodeToString(sum[:]) != want {
			t.Errorf("%s was edited after it shipped: add a new migration instead", f.Name())
		}
	}
}
