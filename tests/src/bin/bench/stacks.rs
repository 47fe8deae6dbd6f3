//! The PAM session stacks the benchmarks compare (auth and account by pam_permit).

use vigil_e2e::{Harness, PamStack, paths};

/// pam_vigil over vigild's private socket.
pub fn vigil_socket(h: &Harness) -> PamStack {
    PamStack::vigil_session(&paths::pam_module(), &h.vigil_args())
}

/// pam_vigil over the harness's bus, the socket argument pointing nowhere so that only
/// the bus can register the session.
pub fn vigil_bus(h: &Harness) -> PamStack {
    PamStack::vigil_session(&paths::pam_module(), &h.vigil_args().bus(&h.bus_address()).socket(h.path("no-such-socket")))
}
