package backup

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"

	"github.com/redoubt-systems/redoubt/media"
	"github.com/redoubt-systems/redoubt/objectstore"
	"github.com/redoubt-systems/redoubt/storage"
)

// Media in continuous backup. With media.path, media bytes are files of
// their own, not pages of the database: each generation keeps them as
// generations/GEN/media/ID, encrypted with age. Each file is sent once,
// when it is stored; when a generation begins, those the one before holds
// are copied inside the store (no bytes pass through this process) and the
// rest sent. A generation's base holds no media: a restore fetches what its
// database lists and checks each file against the SHA-256 the database
// keeps. Media deleted here goes from the destinations with the last
// generation that holds it.

func mediaKey(gen, id string) string { return generationsDir + gen + "/media/" + id }

// MediaStored is told of a media file once it is complete in media.path;
// the next round sends it.
func (r *Replicator) MediaStored(id string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.newMedia = append(r.newMedia, id)
}

// mediaFile is where media.path keeps a media ID's bytes.
func (r *Replicator) mediaFile(id string) string { return media.FilePath(r.Cfg.Media.Path, id) }

// encrypted streams a media file encrypted to the recipients.
func (r *Replicator) encrypted(path string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		body := Encrypting(r.recipients, func(w io.Writer) error {
			_, err := io.Copy(w, f)
			return err
		})
		// The file is closed with the stream: write never runs if the
		// encryption could not start.
		return closing{body, f}, nil
	}
}

// closing is a stream that closes another thing after itself.
type closing struct {
	io.ReadCloser
	then io.Closer
}

func (c closing) Close() error {
	err := c.ReadCloser.Close()
	_ = c.then.Close()
	return err
}

// Encrypting streams what write writes, encrypted to the recipients, as
// it is written. Closing it stops the writing and waits for write to end.
func Encrypting(recipients []age.Recipient, write func(io.Writer) error) io.ReadCloser {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		aw, err := age.Encrypt(pw, recipients...)
		if err == nil {
			err = write(aw)
			if cerr := aw.Close(); err == nil {
				err = cerr
			}
		}
		pw.CloseWithError(err)
	}()
	return &encrypting{pr, done}
}

type encrypting struct {
	*io.PipeReader
	done chan struct{}
}

func (e *encrypting) Close() error {
	e.PipeReader.CloseWithError(errors.New("backup: the reader stopped"))
	<-e.done
	return nil
}

// putStream sends what open yields, opening it anew for each attempt.
func putStream(ctx context.Context, s *objectstore.Store, key string, open func() (io.ReadCloser, error)) error {
	return retry(ctx, func(ctx context.Context) error {
		body, err := open()
		if err != nil {
			return err
		}
		defer body.Close()
		return s.PutStream(ctx, key, body)
	})
}

// syncMedia gives a new generation every media file in media.path at the
// destinations that got its base: copied from the newest generation before
// it where that holds it, sent otherwise. A destination where this fails
// gets an error in sent.
func (r *Replicator) syncMedia(ctx context.Context, gen string, sent []Sent) {
	if r.Cfg.Media.Path == "" {
		return
	}
	var ids []string
	err := filepath.WalkDir(r.Cfg.Media.Path, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			ids = append(ids, d.Name())
		}
		return err
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		for i := range sent {
			sent[i].Err = fmt.Errorf("media: %w", err)
		}
		return
	}
	for i := range sent {
		if sent[i].Err == nil {
			sent[i].Err = r.syncMediaTo(ctx, sent[i].Store, gen, ids)
		}
	}
}

func (r *Replicator) syncMediaTo(ctx context.Context, s *objectstore.Store, gen string, ids []string) error {
	held := map[string]bool{}
	gens, err := Generations(ctx, s)
	if err != nil {
		return err
	}
	var prev string
	for _, g := range gens {
		if g.Base.Complete && g.Name < gen {
			prev = g.Name
		}
	}
	if prev != "" {
		objects, err := s.List(ctx, generationsDir+prev+"/media/")
		if err != nil {
			return err
		}
		for _, o := range objects {
			held[strings.TrimPrefix(o.Key, generationsDir+prev+"/media/")] = true
		}
	}
	for _, id := range ids {
		if held[id] {
			err = retry(ctx, func(ctx context.Context) error { return s.Copy(ctx, mediaKey(prev, id), mediaKey(gen, id)) })
		} else {
			err = putStream(ctx, s, mediaKey(gen, id), r.encrypted(r.mediaFile(id)))
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) { // one deleted meanwhile needs nothing
			return fmt.Errorf("media %s: %w", id, err)
		}
	}
	return nil
}

// fetchMedia fetches the media files a restored database lists into
// dir/media, each checked against its SHA-256; media a destination does
// not hold (stored in the last moments before the copy was cut off) is
// removed from the database, and listed.
func fetchMedia(ctx context.Context, s *objectstore.Store, gen string, identities []age.Identity, dir string) (missing []string, err error) {
	db, err := storage.Open(ctx, filepath.Join(dir, dbName))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	files, err := db.R().MediaFiles(ctx)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		err := fetchMediaFile(ctx, s, mediaKey(gen, f.MediaID), identities, media.FilePath(filepath.Join(dir, "media"), f.MediaID), f.SHA256)
		if errors.Is(err, objectstore.ErrNotFound) {
			missing = append(missing, f.MediaID)
			err = db.Write(ctx, func(q storage.Q) error { return q.DeleteMedia(ctx, f.MediaID) })
		}
		if err != nil {
			return missing, fmt.Errorf("media %s: %w", f.MediaID, err)
		}
	}
	return missing, nil
}

func fetchMediaFile(ctx context.Context, s *objectstore.Store, key string, identities []age.Identity, path, sum string) error {
	obj, err := s.Open(ctx, key)
	if err != nil {
		return err
	}
	defer obj.Close()
	ar, err := age.Decrypt(obj, identities...)
	if err != nil {
		return fmt.Errorf("damaged or not encrypted to the given identity: %w", err)
	}
	// A file that fails here is left in the restore's temporary
	// directory, which is shredded whole when the restore fails.
	got, err := extract(ar, path, key)
	if err != nil {
		return err
	}
	if want, _ := base64.RawStdEncoding.DecodeString(sum); got.SHA256 != hex.EncodeToString(want) {
		return errors.New("does not match its SHA-256")
	}
	return nil
}
