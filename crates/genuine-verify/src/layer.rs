//! The tower `Layer` (being written).
