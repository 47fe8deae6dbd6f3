//! What vigild's binaries share with each other and with vigil-docgen: the command
//! lines (docgen writes the man pages and completions from them) and the private
//! socket's connection limits. vigild's own modules stay in its binary (`main.rs`).

pub mod cli {
    pub mod vigilctl;
    pub mod vigild;
}
pub mod connection_limits;
