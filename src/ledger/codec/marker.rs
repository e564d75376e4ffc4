//! The marker table: every MessagePack marker byte the codec reads or writes, and the one
//! rule for the header an integer or a length gets in the writer's (shortest) form.
//!
//! The writer and its exact-size computation (`write`), the reader and its check that
//! stored bytes are in the writer's form (`read`) all take their markers and header sizes
//! from here, so the form is defined once.

/// `nil`.
pub(crate) const NIL: u8 = 0xc0;
/// `false`.
pub(crate) const FALSE: u8 = 0xc2;
/// `true`.
pub(crate) const TRUE: u8 = 0xc3;
/// `bin 8`, `bin 16`, `bin 32`.
pub(crate) const BIN8: u8 = 0xc4;
pub(crate) const BIN16: u8 = 0xc5;
pub(crate) const BIN32: u8 = 0xc6;
/// `ext 8`, `ext 16`, `ext 32` (length, then the type byte, then the payload).
pub(crate) const EXT8: u8 = 0xc7;
pub(crate) const EXT16: u8 = 0xc8;
pub(crate) const EXT32: u8 = 0xc9;
/// `float 32` (read only) and `float 64` (the only float the writer uses).
pub(crate) const FLOAT32: u8 = 0xca;
pub(crate) const FLOAT64: u8 = 0xcb;
/// Unsigned integers of 8, 16, 32 and 64 bits.
pub(crate) const UINT8: u8 = 0xcc;
pub(crate) const UINT16: u8 = 0xcd;
pub(crate) const UINT32: u8 = 0xce;
pub(crate) const UINT64: u8 = 0xcf;
/// Signed integers of 8, 16, 32 and 64 bits.
pub(crate) const INT8: u8 = 0xd0;
pub(crate) const INT16: u8 = 0xd1;
pub(crate) const INT32: u8 = 0xd2;
pub(crate) const INT64: u8 = 0xd3;
/// `fixext 1/2/4/8/16` (read only: the writer always uses `ext 8/16/32`).
pub(crate) const FIXEXT1: u8 = 0xd4;
pub(crate) const FIXEXT2: u8 = 0xd5;
pub(crate) const FIXEXT4: u8 = 0xd6;
pub(crate) const FIXEXT8: u8 = 0xd7;
pub(crate) const FIXEXT16: u8 = 0xd8;
/// `str 8`, `str 16`, `str 32`.
pub(crate) const STR8: u8 = 0xd9;
pub(crate) const STR16: u8 = 0xda;
pub(crate) const STR32: u8 = 0xdb;
/// `array 16`, `array 32`.
pub(crate) const ARRAY16: u8 = 0xdc;
pub(crate) const ARRAY32: u8 = 0xdd;
/// `map 16`, `map 32`.
pub(crate) const MAP16: u8 = 0xde;
pub(crate) const MAP32: u8 = 0xdf;
/// Positive fixint: `0x00..=0x7f` is the integer itself.
pub(crate) const POSFIX_LAST: u8 = 0x7f;
/// fixmap: `0x80 | n` for `n <= 15`.
pub(crate) const FIXMAP: u8 = 0x80;
pub(crate) const FIXMAP_LAST: u8 = 0x8f;
/// fixarray: `0x90 | n` for `n <= 15`.
pub(crate) const FIXARRAY: u8 = 0x90;
pub(crate) const FIXARRAY_LAST: u8 = 0x9f;
/// fixstr: `0xa0 | n` for `n <= 31`.
pub(crate) const FIXSTR: u8 = 0xa0;
pub(crate) const FIXSTR_LAST: u8 = 0xbf;
/// Negative fixint: `0xe0..=0xff` is the integer -32..=-1.
pub(crate) const NEGFIX: u8 = 0xe0;

/// The MessagePack extension type used for Symbols.
pub const EXT_SYMBOL: i8 = 1;

/// A family of items whose header carries a length: the markers of its forms.
#[derive(Clone, Copy)]
pub(crate) struct LenFamily {
    /// The fix form: base marker and the largest length it holds.
    fix: Option<(u8, usize)>,
    /// The form with a one-byte length, if the family has one.
    m8: Option<u8>,
    /// The forms with a two- and a four-byte length.
    m16: u8,
    m32: u8,
}

/// Strings.
pub(crate) const STR: LenFamily = LenFamily {
    fix: Some((FIXSTR, 31)),
    m8: Some(STR8),
    m16: STR16,
    m32: STR32,
};
/// Binary strings.
pub(crate) const BIN: LenFamily = LenFamily {
    fix: None,
    m8: Some(BIN8),
    m16: BIN16,
    m32: BIN32,
};
/// Extensions, as the writer writes them (the fixext forms are read, never written).
pub(crate) const EXT: LenFamily = LenFamily {
    fix: None,
    m8: Some(EXT8),
    m16: EXT16,
    m32: EXT32,
};
/// Arrays.
pub(crate) const ARRAY: LenFamily = LenFamily {
    fix: Some((FIXARRAY, 15)),
    m8: None,
    m16: ARRAY16,
    m32: ARRAY32,
};
/// Maps.
pub(crate) const MAP: LenFamily = LenFamily {
    fix: Some((FIXMAP, 15)),
    m8: None,
    m16: MAP16,
    m32: MAP32,
};

impl LenFamily {
    /// The length rule: the marker the writer uses for an item of `len` and the size of
    /// its header in bytes (marker and length field; an extension's type byte is not
    /// counted).
    #[inline(always)]
    pub(crate) fn head(self, len: usize) -> (u8, usize) {
        if let Some((base, max)) = self.fix {
            if len <= max {
                return (base | len as u8, 1);
            }
        }
        match self.m8 {
            Some(m8) if len <= u8::MAX as usize => (m8, 2),
            _ if len <= u16::MAX as usize => (self.m16, 3),
            _ => (self.m32, 5),
        }
    }

    /// Appends the header of an item of `len`.
    #[inline(always)]
    pub(crate) fn write(self, out: &mut Vec<u8>, len: usize) {
        let (marker, size) = self.head(len);
        out.push(marker);
        match size {
            1 => {}
            2 => out.push(len as u8),
            3 => out.extend_from_slice(&(len as u16).to_be_bytes()),
            _ => out.extend_from_slice(&(len as u32).to_be_bytes()),
        }
    }
}

/// The integer rule: the marker of `v` in its shortest form and its total size in bytes.
#[inline(always)]
pub(crate) fn int_head(v: i64) -> (u8, usize) {
    match v {
        0..=127 => (v as u8, 1),
        -32..=-1 => (v as i8 as u8, 1),
        128..=0xff => (UINT8, 2),
        0x100..=0xffff => (UINT16, 3),
        0x1_0000..=0xffff_ffff => (UINT32, 5),
        0x1_0000_0000.. => (UINT64, 9),
        -128..=-33 => (INT8, 2),
        -32768..=-129 => (INT16, 3),
        -2_147_483_648..=-32769 => (INT32, 5),
        _ => (INT64, 9),
    }
}
