package broker

import (
	"bytes"
	"testing"

	"github.com/klauspost/compress/s2"
)

// TestPackKeepsNoSlack: the read model keeps a record's compressed state
// for as long as the entity lives; s2.Encode's own buffer is sized for the
// worst case (larger than the uncompressed input), so pack must copy the
// result out of it.
func TestPackKeepsNoSlack(t *testing.T) {
	for _, doc := range []string{aqObserved(3), `{"id":"urn:a:1","type":"T"}`} {
		stored := encodeStored(newState(mustEntity(t, doc), now()))
		p := pack(stored)
		if cap(p) > len(p)+len(p)/8+16 { // beyond malloc's size classes
			t.Errorf("pack keeps %d bytes for %d", cap(p), len(p))
		}
		data, release, err := unpack(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, stored) {
			t.Errorf("unpack(pack(x)) != x")
		}
		release()
		if want, _ := s2.Decode(nil, p); !bytes.Equal(want, stored) {
			t.Errorf("pack's output is not S2 that s2.Decode reads")
		}
	}
	if _, _, err := unpack([]byte{0xff, 0xff, 0xff}); err == nil {
		t.Error("unpack of garbage: no error")
	}
}
