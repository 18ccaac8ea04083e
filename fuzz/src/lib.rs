//! Helpers shared by the fuzz targets: splitting an input into fields, and checking that a
//! result borrows from the input it was given.

/// Splits the fuzzer's input into newline-separated fields, so that corpus files stay
/// readable and easy to seed by hand.
pub fn fields(data: &[u8]) -> Vec<&[u8]> {
    data.split(|&b| b == b'\n').collect()
}

/// Is `inner` a sub-slice of `outer` (same memory, inside its bounds)? A parser that returns
/// such a slice has read nothing outside what it was given.
pub fn is_within(outer: &[u8], inner: &[u8]) -> bool {
    let o = outer.as_ptr_range();
    let i = inner.as_ptr_range();
    o.start <= i.start && i.end <= o.end
}

pub fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}
