//! Errors in Cerbos's shape: `{"code": <gRPC code>, "message": "..."}`.

use serde::Serialize;

/// gRPC status codes Cerbos puts in `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 3: bad input.
    InvalidArgument = 3,
    /// 5: no such route.
    NotFound = 5,
    /// 8: too large.
    ResourceExhausted = 8,
    /// 12: wrong method.
    Unimplemented = 12,
    /// 13: a bug.
    Internal = 13,
    /// 16: a JWT that does not verify.
    Unauthenticated = 16,
}

/// A request the API refuses, with the HTTP status to answer it with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// gRPC code.
    pub code: Code,
    /// Human-readable reason, naming the field at fault.
    pub message: String,
}

/// The JSON body of an error answer.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// gRPC code.
    pub code: u16,
    /// Reason.
    pub message: &'a str,
}

impl ApiError {
    /// Bad input (HTTP 400).
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError {
            code: Code::InvalidArgument,
            message: message.into(),
        }
    }

    /// Unknown route (HTTP 404).
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            code: Code::NotFound,
            message: message.into(),
        }
    }

    /// Wrong method (HTTP 405).
    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError {
            code: Code::Unimplemented,
            message: message.into(),
        }
    }

    /// Body too large (HTTP 413).
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError {
            code: Code::ResourceExhausted,
            message: message.into(),
        }
    }

    /// A bug (HTTP 500).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            code: Code::Internal,
            message: message.into(),
        }
    }

    /// A JWT that fails verification (HTTP 400, as Cerbos answers it).
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError {
            code: Code::Unauthenticated,
            message: message.into(),
        }
    }

    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        match self.code {
            Code::InvalidArgument | Code::Unauthenticated => 400,
            Code::NotFound => 404,
            Code::ResourceExhausted => 413,
            Code::Unimplemented => 405,
            Code::Internal => 500,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&ErrorBody {
            code: self.code as u16,
            message: &self.message,
        })
        .unwrap_or_else(|_| br#"{"code":13,"message":"error"}"#.to_vec())
    }
}
