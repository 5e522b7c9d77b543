package fastjson

// Reading a document a piece at a time: SplitArray cuts a JSON array into
// its elements, and an Iter walks the members of objects, so that a caller
// can turn the common shapes of its documents into its own types without
// building a map for every object. Both only say whether the input has the
// shape asked for: on false, the caller decodes it with Decode, which also
// explains what is wrong with it.

// SplitArray returns the elements of a document that is a JSON array, as
// slices of data (surrounding whitespace trimmed), after checking the whole
// document as Decode does. It returns ok false when Decode would fail, or
// would return something other than an array. It is safe for concurrent
// use; the slices alias data.
func SplitArray(data []byte) (elems [][]byte, ok bool) {
	d := decoderPool.Get().(*decoder)
	defer func() {
		d.reset()
		decoderPool.Put(d)
	}()
	d.data, d.pos, d.depth = data, 0, 0
	c, ok := d.skip()
	if !ok || c != '[' {
		return nil, false
	}
	d.pos++
	d.depth = 1
	if c, ok = d.skip(); !ok {
		return nil, false
	}
	if c == ']' {
		d.pos++
	} else {
		for {
			start := d.pos
			if !d.skipValue(c) {
				return nil, false
			}
			elems = append(elems, data[start:d.pos])
			if c, ok = d.skip(); !ok {
				return nil, false
			}
			d.pos++
			if c == ']' {
				break
			}
			if c != ',' {
				return nil, false
			}
			if c, ok = d.skip(); !ok {
				return nil, false
			}
		}
	}
	if _, more := d.skip(); more {
		return nil, false
	}
	if elems == nil {
		elems = [][]byte{}
	}
	return elems, true
}

// skipValue checks the value that starts with c at d.pos exactly as value
// would parse it, and leaves d.pos after it, without building it.
func (d *decoder) skipValue(c byte) bool {
	switch c {
	case '"':
		_, err := d.scanString()
		return err == nil
	case 't':
		return d.literal("true") == nil
	case 'f':
		return d.literal("false") == nil
	case 'n':
		return d.literal("null") == nil
	case '{', '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		d.pos++
		if d.depth++; d.depth > MaxDepth {
			return false
		}
		c, ok := d.skip()
		if !ok {
			return false
		}
		if c == end {
			d.pos++
			d.depth--
			return true
		}
		for {
			if end == '}' {
				if c != '"' {
					return false
				}
				if _, err := d.scanString(); err != nil {
					return false
				}
				if c, ok = d.skip(); !ok || c != ':' {
					return false
				}
				d.pos++
				if c, ok = d.skip(); !ok {
					return false
				}
			}
			if !d.skipValue(c) {
				return false
			}
			if c, ok = d.skip(); !ok {
				return false
			}
			d.pos++
			if c == end {
				d.depth--
				return true
			}
			if c != ',' {
				return false
			}
			if c, ok = d.skip(); !ok {
				return false
			}
		}
	}
	if c == '-' || '0' <= c && c <= '9' {
		_, err := d.scanNumber()
		return err == nil
	}
	return false
}

// Iter reads one JSON document as a sequence of objects' members. Values it
// is asked for whole are decoded as Decode decodes them. Any input that is
// not the shape asked for, or not valid JSON, makes the call that meets it
// return false, and every later call too. The zero Iter is ready for Reset;
// an Iter is not safe for concurrent use.
type Iter struct {
	d *decoder
	// comma is true after a member's value: the next member needs a ','.
	comma  bool
	failed bool
}

// Reset starts reading data. The Iter keeps data until Release or the next
// Reset; strings and values it returns do not alias data.
func (it *Iter) Reset(data []byte) {
	if it.d == nil {
		it.d = decoderPool.Get().(*decoder)
	}
	it.d.reset()
	it.d.data, it.d.pos, it.d.depth = data, 0, 0
	it.comma, it.failed = false, false
}

// Release returns the Iter's scratch space to the pool; Reset makes it
// usable again.
func (it *Iter) Release() {
	if it.d != nil {
		it.d.reset()
		decoderPool.Put(it.d)
		it.d = nil
	}
}

func (it *Iter) fail() bool {
	it.failed = true
	return false
}

// Object enters the object that is the next value.
func (it *Iter) Object() bool {
	if it.failed {
		return false
	}
	d := it.d
	c, ok := d.skip()
	if !ok || c != '{' {
		return it.fail()
	}
	d.pos++
	if d.depth++; d.depth > MaxDepth {
		return it.fail()
	}
	it.comma = false
	return true
}

// Member reads the next member name of the object Object entered, and the
// colon after it; the caller then reads its value (Value, String or Object).
// At the end of the object it returns more false (and ok true) and leaves
// the object.
func (it *Iter) Member() (key string, more, ok bool) {
	if it.failed {
		return "", false, false
	}
	d := it.d
	c, has := d.skip()
	if !has {
		return "", false, it.fail()
	}
	if c == '}' {
		d.pos++
		d.depth--
		it.comma = true
		return "", false, true
	}
	if it.comma {
		if c != ',' {
			return "", false, it.fail()
		}
		d.pos++
		if c, has = d.skip(); !has {
			return "", false, it.fail()
		}
	}
	if c != '"' {
		return "", false, it.fail()
	}
	key, err := d.key()
	if err != nil {
		return "", false, it.fail()
	}
	if c, has = d.skip(); !has || c != ':' {
		return "", false, it.fail()
	}
	d.pos++
	it.comma = false
	return key, true, true
}

// Value decodes the next value whole.
func (it *Iter) Value() (any, bool) {
	if it.failed {
		return nil, false
	}
	d := it.d
	c, ok := d.skip()
	if !ok {
		return nil, it.fail()
	}
	v, err := d.value(c)
	if err != nil {
		return nil, it.fail()
	}
	it.comma = true
	return v, true
}

// Skip passes over the next value, checking it as Value would, without
// building it.
func (it *Iter) Skip() bool {
	if it.failed {
		return false
	}
	c, ok := it.d.skip()
	if !ok || !it.d.skipValue(c) {
		return it.fail()
	}
	it.comma = true
	return true
}

// String reads the next value, which must be a string.
func (it *Iter) String() (string, bool) {
	if it.failed {
		return "", false
	}
	c, ok := it.d.skip()
	if !ok || c != '"' {
		return "", it.fail()
	}
	v, ok := it.Value()
	s, _ := v.(string)
	return s, ok
}

// Done reports whether the document ended after the value read last, with
// nothing but whitespace after it.
func (it *Iter) Done() bool {
	if it.failed || it.d.depth != 0 {
		return false
	}
	_, more := it.d.skip()
	return !more
}
