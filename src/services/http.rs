//! The HTTP/1.1 service (in progress).
