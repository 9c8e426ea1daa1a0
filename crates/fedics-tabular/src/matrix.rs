//! A dense row-major `f32` matrix, the preprocessor's output.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TabularError};

/// Dense row-major matrix of `f32` (`rows * cols` values).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Matrix {
    /// A matrix over `data` (row-major); `data.len()` must be `rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(TabularError::InvalidArgument(format!(
                "{} values for a {rows} x {cols} matrix",
                data.len()
            )));
        }
        Ok(Self { rows, cols, data })
    }

    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// One row, if it exists.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        if i < self.rows {
            Some(&self.data[i * self.cols..(i + 1) * self.cols])
        } else {
            None
        }
    }

    pub fn row_mut(&mut self, i: usize) -> Option<&mut [f32]> {
        if i < self.rows {
            Some(&mut self.data[i * self.cols..(i + 1) * self.cols])
        } else {
            None
        }
    }

    /// The value at (row, col), if it exists.
    pub fn get(&self, row: usize, col: usize) -> Option<f32> {
        if col < self.cols {
            self.row(row).map(|r| r[col])
        } else {
            None
        }
    }

    /// Rows in order. A matrix with zero columns yields no rows.
    pub fn iter_rows(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.cols.max(1))
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }

    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// A new matrix with the given rows, in order.
    pub fn select_rows(&self, rows: &[usize]) -> Result<Matrix> {
        let mut data = Vec::with_capacity(rows.len() * self.cols);
        for &r in rows {
            let row = self.row(r).ok_or_else(|| {
                TabularError::InvalidArgument(format!(
                    "row {r} is out of range (the matrix has {} rows)",
                    self.rows
                ))
            })?;
            data.extend_from_slice(row);
        }
        Ok(Matrix {
            rows: rows.len(),
            cols: self.cols,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_access() {
        let m = Matrix::new(2, 3, vec![1., 2., 3., 4., 5., 6.]).unwrap();
        assert_eq!(m.row(1), Some(&[4., 5., 6.][..]));
        assert_eq!(m.get(0, 2), Some(3.));
        assert_eq!(m.get(0, 3), None);
        assert_eq!(m.row(2), None);
        assert_eq!(m.iter_rows().count(), 2);
        assert!(Matrix::new(2, 2, vec![0.; 3]).is_err());
        let s = m.select_rows(&[1, 1]).unwrap();
        assert_eq!(s.as_slice(), &[4., 5., 6., 4., 5., 6.]);
        assert!(m.select_rows(&[2]).is_err());
    }
}
