package backup

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"time"
)

// SQLite's WAL file, as https://sqlite.org/fileformat.html#the_write_ahead_log
// describes it: a 32-byte header, then frames of a 24-byte header and one
// page. A frame belongs to the WAL if it carries the header's salts and its
// checksum continues the chain from the header; a frame whose header gives
// the database size in pages ends a transaction (commits it).
const (
	walHeaderSize      = 32
	walFrameHeaderSize = 24
)

var be = binary.BigEndian

// walChecksum continues SQLite's checksum (s1, s2) over b (a multiple of 8
// bytes), reading words in the byte order the WAL's magic number names.
func walChecksum(s1, s2 uint32, b []byte, order binary.ByteOrder) (uint32, uint32) {
	for i := 0; i+8 <= len(b); i += 8 {
		s1 += order.Uint32(b[i:]) + s2
		s2 += order.Uint32(b[i+4:]) + s1
	}
	return s1, s2
}

// walChunk is a run of committed frames of one WAL, reduced to the last
// version of each page: what a replica needs to move from the state after
// frame First-1 to the state after frame Last.
type walChunk struct {
	Salt1, Salt2 uint32
	First, Last  uint32 // frame numbers, from 1
	PageSize     uint32
	DBPages      uint32 // the database's size in pages after frame Last
	Pages        map[uint32][]byte
	read         time.Time // when it was read
}

// walReader reads the frames committed to a WAL file since it last read.
type walReader struct {
	path         string
	salt1, salt2 uint32 // the WAL being read; zero before its header
	order        binary.ByteOrder
	pageSize     uint32
	next         int64  // offset of the next frame
	frames       uint32 // frames read
	s1, s2       uint32 // checksum after the last frame read
}

// read returns the frames committed since the last read (nil if none).
// A WAL that SQLite restarted (new salts) is read from its first frame.
func (r *walReader) read() (*walChunk, error) {
	f, err := os.Open(r.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // no WAL yet
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := make([]byte, walHeaderSize)
	if _, err := f.ReadAt(h, 0); err != nil {
		return nil, nil // truncated by a checkpoint, or being written
	}
	var order binary.ByteOrder
	switch be.Uint32(h) {
	case 0x377f0682:
		order = binary.LittleEndian
	case 0x377f0683:
		order = binary.BigEndian
	default:
		return nil, nil // a header being written
	}
	if s1, s2 := walChecksum(0, 0, h[:24], order); s1 != be.Uint32(h[24:]) || s2 != be.Uint32(h[28:]) {
		return nil, nil
	}
	if salt1, salt2 := be.Uint32(h[16:]), be.Uint32(h[20:]); salt1 != r.salt1 || salt2 != r.salt2 {
		*r = walReader{path: r.path, salt1: salt1, salt2: salt2, order: order, pageSize: be.Uint32(h[8:]),
			next: walHeaderSize, s1: be.Uint32(h[24:]), s2: be.Uint32(h[28:])}
	}
	// The frames after those read so far, one at a time: what is kept is
	// the last version of each page, copied, not the whole WAL.
	in := bufio.NewReaderSize(io.NewSectionReader(f, r.next, 1<<62), 1<<20)
	c := &walChunk{Salt1: r.salt1, Salt2: r.salt2, First: r.frames + 1, PageSize: r.pageSize, Pages: map[uint32][]byte{}}
	frameSize := int64(walFrameHeaderSize) + int64(r.pageSize)
	frame := make([]byte, frameSize)
	tail := map[uint32][]byte{} // pages of a transaction not yet committed
	var read, off int64
	s1, s2, frames := r.s1, r.s2, r.frames
	for ; ; off += frameSize {
		if _, err := io.ReadFull(in, frame); err != nil {
			break // the end, or a frame being written
		}
		fh, page := frame[:walFrameHeaderSize], frame[walFrameHeaderSize:]
		if be.Uint32(fh[8:]) != r.salt1 || be.Uint32(fh[12:]) != r.salt2 {
			break
		}
		s1, s2 = walChecksum(s1, s2, fh[:8], r.order)
		s1, s2 = walChecksum(s1, s2, page, r.order)
		if s1 != be.Uint32(fh[16:]) || s2 != be.Uint32(fh[20:]) {
			break
		}
		frames++
		pgno := be.Uint32(fh)
		if old, ok := tail[pgno]; ok {
			copy(old, page)
		} else {
			tail[pgno] = bytes.Clone(page)
		}
		if dbPages := be.Uint32(fh[4:]); dbPages != 0 {
			maps.Copy(c.Pages, tail)
			clear(tail)
			c.Last, c.DBPages = frames, dbPages
			r.frames, r.s1, r.s2 = frames, s1, s2
			read = off + frameSize
		}
	}
	if c.Last == 0 {
		return nil, nil
	}
	r.next += read // a transaction not yet committed is read again next time
	return c, nil
}

// A segment is a chunk as shipped (then compressed and encrypted):
// "RDBTWAL1", seven big-endian uint32 (salt1, salt2, first, last, page
// size, database pages, page count), then each page as its number and
// its bytes, in page order.
const segmentMagic = "RDBTWAL1"

func (c *walChunk) encode(w io.Writer) error {
	hdr := []byte(segmentMagic)
	for _, v := range []uint32{c.Salt1, c.Salt2, c.First, c.Last, c.PageSize, c.DBPages, uint32(len(c.Pages))} {
		hdr = be.AppendUint32(hdr, v)
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	for _, pgno := range slices.Sorted(maps.Keys(c.Pages)) {
		if _, err := w.Write(be.AppendUint32(nil, pgno)); err != nil {
			return err
		}
		if _, err := w.Write(c.Pages[pgno]); err != nil {
			return err
		}
	}
	return nil
}

// decodeSegment reads a segment, checking its shape.
func decodeSegment(b []byte) (*walChunk, error) {
	if len(b) < len(segmentMagic)+28 || string(b[:len(segmentMagic)]) != segmentMagic {
		return nil, errors.New("not a WAL segment")
	}
	b = b[len(segmentMagic):]
	v := make([]uint32, 7)
	for i := range v {
		v[i] = be.Uint32(b[4*i:])
	}
	b = b[28:]
	c := &walChunk{Salt1: v[0], Salt2: v[1], First: v[2], Last: v[3], PageSize: v[4], DBPages: v[5], Pages: map[uint32][]byte{}}
	if c.PageSize < 512 || c.PageSize > 65536 || c.First == 0 || c.Last < c.First || uint64(len(b)) != uint64(v[6])*(4+uint64(c.PageSize)) {
		return nil, fmt.Errorf("damaged WAL segment (frames %d-%d)", c.First, c.Last)
	}
	for ; len(b) > 0; b = b[4+c.PageSize:] {
		c.Pages[be.Uint32(b)] = b[4 : 4+c.PageSize]
	}
	return c, nil
}
