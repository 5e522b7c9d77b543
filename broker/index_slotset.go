package broker

import (
	"math/bits"
	"slices"
)

// slotSet is a set of read-model slots (dense uint32 numbers given to live
// entities), kept like a roaring bitmap: the slots are split into chunks of
// 65,536, and each chunk is a sorted array of 16-bit offsets while it holds
// fewer than 4,096 of them (2 bytes a member) and a bitmap of 8 KiB beyond
// (at most 2 bytes a member, 1 bit per slot when dense). Sets of any density
// cost at most about 2 bytes a member, so every attribute of every type can
// have one. The zero value is an empty set. It is not safe for concurrent
// mutation; the read model mutates it under its write lock.
type slotSet struct {
	chunks []setChunk // by slot>>16; nil-able entries
	n      int
}

type setChunk struct {
	arr  []uint16 // sorted, when bm is nil
	bm   *[1024]uint64
	size int
}

const arrayMax = 4096

func (s *slotSet) len() int {
	if s == nil {
		return 0
	}
	return s.n
}

func (s *slotSet) add(x uint32) {
	hi, lo := int(x>>16), uint16(x)
	if hi >= len(s.chunks) {
		s.chunks = append(s.chunks, make([]setChunk, hi+1-len(s.chunks))...)
	}
	c := &s.chunks[hi]
	if c.bm != nil {
		w, b := lo>>6, uint64(1)<<(lo&63)
		if c.bm[w]&b == 0 {
			c.bm[w] |= b
			c.size++
			s.n++
		}
		return
	}
	i, found := slices.BinarySearch(c.arr, lo)
	if found {
		return
	}
	if len(c.arr) >= arrayMax {
		bm := new([1024]uint64)
		for _, v := range c.arr {
			bm[v>>6] |= 1 << (v & 63)
		}
		bm[lo>>6] |= 1 << (lo & 63)
		c.bm, c.arr = bm, nil
		c.size++
		s.n++
		return
	}
	c.arr = slices.Insert(c.arr, i, lo)
	c.size++
	s.n++
}

func (s *slotSet) remove(x uint32) {
	if s == nil {
		return
	}
	hi, lo := int(x>>16), uint16(x)
	if hi >= len(s.chunks) {
		return
	}
	c := &s.chunks[hi]
	if c.bm != nil {
		w, b := lo>>6, uint64(1)<<(lo&63)
		if c.bm[w]&b != 0 {
			c.bm[w] &^= b
			c.size--
			s.n--
			if c.size < arrayMax/2 {
				// Back to an array, with room to spare before the next switch.
				arr := make([]uint16, 0, c.size)
				for wi, word := range c.bm {
					for word != 0 {
						t := bits.TrailingZeros64(word)
						arr = append(arr, uint16(wi<<6|t))
						word &= word - 1
					}
				}
				c.arr, c.bm = arr, nil
			}
		}
		return
	}
	if i, found := slices.BinarySearch(c.arr, lo); found {
		c.arr = slices.Delete(c.arr, i, i+1)
		c.size--
		s.n--
		if len(c.arr) == 0 {
			c.arr = nil
		}
	}
}

func (s *slotSet) has(x uint32) bool {
	if s == nil {
		return false
	}
	hi, lo := int(x>>16), uint16(x)
	if hi >= len(s.chunks) {
		return false
	}
	c := &s.chunks[hi]
	if c.bm != nil {
		return c.bm[lo>>6]&(1<<(lo&63)) != 0
	}
	_, found := slices.BinarySearch(c.arr, lo)
	return found
}

// each calls f for every member in increasing order until f returns false.
func (s *slotSet) each(f func(uint32) bool) {
	if s == nil {
		return
	}
	for hi := range s.chunks {
		c := &s.chunks[hi]
		base := uint32(hi) << 16
		if c.bm != nil {
			for wi, word := range c.bm {
				for word != 0 {
					t := bits.TrailingZeros64(word)
					if !f(base | uint32(wi<<6|t)) {
						return
					}
					word &= word - 1
				}
			}
			continue
		}
		for _, v := range c.arr {
			if !f(base | uint32(v)) {
				return
			}
		}
	}
}

// clear empties the set and frees its chunks.
func (s *slotSet) clear() { *s = slotSet{} }

// bytes is the set's memory, roughly.
func (s *slotSet) bytes() int {
	if s == nil {
		return 0
	}
	n := cap(s.chunks) * 40
	for i := range s.chunks {
		if s.chunks[i].bm != nil {
			n += 8192
		} else {
			n += 2 * cap(s.chunks[i].arr)
		}
	}
	return n
}

// bitmap is a dense set of slots for one query: membership in O(1). It is
// built from an index's answer and checked against many candidates.
type bitmap []uint64

func newBitmap(n int) bitmap { return make(bitmap, (n+63)/64) }

func (b bitmap) set(x uint32) {
	if int(x>>6) < len(b) {
		b[x>>6] |= 1 << (x & 63)
	}
}

func (b bitmap) has(x uint32) bool {
	return int(x>>6) < len(b) && b[x>>6]&(1<<(x&63)) != 0
}
