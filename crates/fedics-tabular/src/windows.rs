//! Sliding windows for sequence models (the LSTM autoencoder).
//!
//! Rows are grouped by key (e.g. the host pair `facility|src_ip|dst_ip`); within a
//! group they are put in order (e.g. by start time; equal order values keep row order).
//! A window is `len` consecutive rows of one group; windows start at positions
//! `0, stride, 2*stride, ...` of the group while a whole window fits, so a group shorter
//! than `len` gives no window and a tail shorter than `len` after the last start is left
//! out. `stride == len` gives non-overlapping windows, `stride == 1` every window.
//!
//! Windows are returned as row indices into the original rows: groups in order of
//! their first row, windows of a group in order.

use std::collections::HashMap;
use std::hash::Hash;

use crate::error::{Result, TabularError};

/// Windows of equal length, stored flat: window `i` is `indices[i*len .. (i+1)*len]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Windows {
    window_len: usize,
    indices: Vec<usize>,
}

impl Windows {
    /// Rows per window.
    pub fn window_len(&self) -> usize {
        self.window_len
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.indices.len().checked_div(self.window_len).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Row indices of window `i`, in order.
    pub fn get(&self, i: usize) -> Option<&[usize]> {
        if i < self.len() {
            Some(&self.indices[i * self.window_len..(i + 1) * self.window_len])
        } else {
            None
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &[usize]> {
        self.indices.chunks_exact(self.window_len.max(1))
    }

    /// All indices, window after window.
    pub fn as_flat(&self) -> &[usize] {
        &self.indices
    }
}

/// Windows of `len` rows of the same key in `order` (see the module documentation).
/// `keys[i]` and `order[i]` describe row `i`. Errors if `len` or `stride` is 0 or the
/// slices differ in length.
pub fn sliding_windows<K: Eq + Hash, O: Ord>(
    keys: &[K],
    order: &[O],
    len: usize,
    stride: usize,
) -> Result<Windows> {
    if len == 0 || stride == 0 {
        return Err(TabularError::InvalidArgument(format!(
            "window length and stride must be at least 1 (got len {len}, stride {stride})"
        )));
    }
    if keys.len() != order.len() {
        return Err(TabularError::InvalidArgument(format!(
            "{} keys but {} order values",
            keys.len(),
            order.len()
        )));
    }
    let mut group_of: HashMap<&K, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let g = *group_of.entry(k).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    let mut indices = Vec::new();
    for mut rows in groups {
        // Stable: equal order values keep row order.
        rows.sort_by(|&a, &b| order[a].cmp(&order[b]));
        let mut start = 0;
        while start + len <= rows.len() {
            indices.extend_from_slice(&rows[start..start + len]);
            start += stride;
        }
    }
    Ok(Windows {
        window_len: len,
        indices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_per_key_in_order() {
        // Rows:      0    1    2    3    4    5    6
        let keys = ["a", "b", "a", "a", "b", "a", "c"];
        let order = [40, 1, 10, 30, 2, 20, 0];
        // Group a in time order: rows 2 (10), 5 (20), 3 (30), 0 (40); b: 1, 4; c: 6.
        let w = sliding_windows(&keys, &order, 2, 1).unwrap();
        let got: Vec<&[usize]> = w.iter().collect();
        assert_eq!(got, [&[2, 5][..], &[5, 3], &[3, 0], &[1, 4]]);
        assert_eq!(w.len(), 4);
        assert_eq!(w.get(3), Some(&[1, 4][..]));
        assert_eq!(w.get(4), None);
        let w = sliding_windows(&keys, &order, 2, 2).unwrap();
        assert_eq!(w.as_flat(), [2, 5, 3, 0, 1, 4]);
        let w = sliding_windows(&keys, &order, 3, 2).unwrap();
        assert_eq!(w.as_flat(), [2, 5, 3]);
        let w = sliding_windows(&keys, &order, 5, 1).unwrap();
        assert!(w.is_empty());
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn ties_keep_row_order_and_bad_arguments() {
        let w = sliding_windows(&[1, 1, 1], &[5, 5, 5], 3, 1).unwrap();
        assert_eq!(w.as_flat(), [0, 1, 2]);
        assert!(sliding_windows(&[1], &[1], 0, 1).is_err());
        assert!(sliding_windows(&[1], &[1], 1, 0).is_err());
        assert!(sliding_windows(&[1, 2], &[1], 1, 1).is_err());
    }
}
