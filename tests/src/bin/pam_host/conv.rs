//! The conversation function: answers prompts with `--password` when given (else the
//! conversation fails, as for a user who cannot type), records every message.

use std::ffi::{CStr, CString, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::ffi::{
    PAM_BUF_ERR, PAM_CONV_ERR, PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_SUCCESS, PAM_TEXT_INFO, PamConv, PamMessage,
    PamResponse,
};

const MAX_MESSAGES: usize = 20;

/// What the conversation knows and saw; lives until after pam_end.
pub struct ConvState {
    pub password: Option<CString>,
    /// Prompts asked (echo on or off).
    pub prompts: Vec<String>,
    /// Every message with its style, the first 20.
    pub messages: Vec<String>,
}

impl ConvState {
    pub fn new(password: Option<&str>) -> ConvState {
        let password = password.map(|p| CString::new(p).expect("the password has no NUL byte"));
        ConvState { password, prompts: Vec::new(), messages: Vec::new() }
    }

    /// The `pam_conv` to hand to pam_start; `self` must outlive the PAM handle.
    pub fn pam_conv(&mut self) -> PamConv {
        PamConv { conv: Some(conversation), appdata_ptr: self as *mut ConvState as *mut c_void }
    }

    fn note(&mut self, style: c_int, text: &str) {
        if self.messages.len() < MAX_MESSAGES {
            let kind = match style {
                PAM_PROMPT_ECHO_OFF => "prompt_echo_off",
                PAM_PROMPT_ECHO_ON => "prompt_echo_on",
                PAM_ERROR_MSG => "error",
                PAM_TEXT_INFO => "info",
                _ => "other",
            };
            self.messages.push(format!("{kind}: {text}"));
        }
    }
}

unsafe extern "C" fn conversation(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    // A panic must not cross into libpam.
    catch_unwind(AssertUnwindSafe(|| unsafe { converse(num_msg, msg, resp, appdata_ptr) })).unwrap_or(PAM_CONV_ERR)
}

/// # Safety
/// Called by libpam with `num_msg` valid message pointers (Linux-PAM layout: an array
/// of pointers) and `appdata_ptr` the `ConvState` given to pam_start.
unsafe fn converse(num_msg: c_int, msg: *mut *const PamMessage, resp: *mut *mut PamResponse, appdata_ptr: *mut c_void) -> c_int {
    if num_msg <= 0 || msg.is_null() || resp.is_null() || appdata_ptr.is_null() {
        return PAM_CONV_ERR;
    }
    let state = unsafe { &mut *(appdata_ptr as *mut ConvState) };
    let n = num_msg as usize;
    // libpam frees the responses with free(): allocate them with calloc/strdup.
    let replies = unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) } as *mut PamResponse;
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        let m = unsafe { &**msg.add(i) };
        let text = if m.msg.is_null() { String::new() } else { unsafe { CStr::from_ptr(m.msg) }.to_string_lossy().into_owned() };
        state.note(m.msg_style, &text);
        match m.msg_style {
            PAM_PROMPT_ECHO_OFF | PAM_PROMPT_ECHO_ON => {
                state.prompts.push(text);
                let Some(password) = &state.password else {
                    unsafe { free_replies(replies, i) };
                    return PAM_CONV_ERR;
                };
                let copy = unsafe { libc::strdup(password.as_ptr()) };
                if copy.is_null() {
                    unsafe { free_replies(replies, i) };
                    return PAM_BUF_ERR;
                }
                unsafe { (*replies.add(i)).resp = copy };
            }
            PAM_ERROR_MSG | PAM_TEXT_INFO => eprintln!("pam_host: PAM says: {text}"),
            _ => {
                unsafe { free_replies(replies, i) };
                return PAM_CONV_ERR;
            }
        }
    }
    unsafe { *resp = replies };
    PAM_SUCCESS
}

/// Frees the first `filled` replies' strings (zeroed first) and the array.
unsafe fn free_replies(replies: *mut PamResponse, filled: usize) {
    for i in 0..filled {
        let r = unsafe { &mut *replies.add(i) };
        if !r.resp.is_null() {
            unsafe {
                libc::memset(r.resp as *mut c_void, 0, libc::strlen(r.resp));
                libc::free(r.resp as *mut c_void);
            }
        }
    }
    unsafe { libc::free(replies as *mut c_void) };
}
