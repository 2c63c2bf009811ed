//go:build goolm

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// An encrypted attachment, as Element sends one: alice encrypts a file,
// uploads the ciphertext and sends its key inside a Megolm-encrypted
// m.file event; bob decrypts the event, downloads the ciphertext through
// the authenticated endpoint and decrypts identical bytes. The server
// holds only ciphertext.
func TestEncryptedAttachment(t *testing.T) {
	srv, alice, bob := aliceAndBob(t)
	room := newEncryptedRoom(t, alice, bob)
	ctx := context.Background()

	plain := make([]byte, 3<<20+123)
	rand.Read(plain)
	copy(plain, "ATTACHMENT-CANARY-5d1f")
	file := attachment.NewEncryptedFile()
	cipher := file.Encrypt(plain)
	up, err := alice.UploadBytes(ctx, cipher, "application/octet-stream")
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	content := &event.MessageEventContent{MsgType: event.MsgFile, Body: "secret.bin",
		File: &event.EncryptedFileInfo{EncryptedFile: *file, URL: up.ContentURI.CUString()}}
	evID := alice.sendEncryptedContent(t, room, content)

	dec := bob.decryptEvent(t, evID)
	var got event.MessageEventContent
	if err := json.Unmarshal(dec.Content.VeryRaw, &got); err != nil || got.File == nil {
		t.Fatalf("decrypted content %s: %v", dec.Content.VeryRaw, err)
	}
	mxc, err := got.File.URL.Parse()
	if err != nil {
		t.Fatal(err)
	}
	data, err := bob.DownloadBytes(ctx, mxc)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	if err := got.File.DecryptInPlace(data); err != nil {
		t.Fatalf("decrypt attachment: %v", err)
	}
	if !bytes.Equal(data, plain) {
		t.Fatal("decrypted attachment differs")
	}
	srv.Stop()
	for _, f := range []string{srv.Cfg.Database, srv.Cfg.Database + "-wal"} {
		if ts.FileContains(t, f, "ATTACHMENT-CANARY-5d1f") {
			t.Fatalf("%s holds the attachment's plaintext", f)
		}
	}
}
