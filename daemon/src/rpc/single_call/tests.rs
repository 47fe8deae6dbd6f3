//! Unit tests of the quick path: which openings it answers, and its answers held against the object server's.

use super::*;

/// A call as the module builds it (`pam_module/src/socket_call.rs`).
fn module_message<B: serde::Serialize + DynamicType>(member: &str, body: &B) -> Message {
    Message::method_call(MANAGER_PATH, member).interface(MANAGER_INTERFACE).destination(vigil_protocol::BUS_NAME).build(body).unwrap()
}

fn opening(uid: u32, call: &Message) -> Vec<u8> {
    let mut bytes = pipelined_handshake(uid);
    bytes.extend_from_slice(call.data().bytes());
    bytes
}

#[test]
fn a_whole_module_opening_is_recognised_and_every_prefix_of_it_waits() {
    let call = module_message("CloseSession", &(7u64,));
    let bytes = opening(0, &call);
    let handshake = pipelined_handshake(0);
    assert_eq!(progress(&bytes, &handshake), Progress::Whole { begin_end: handshake.len(), call_end: bytes.len() });
    for cut in 1..bytes.len() {
        let expected = if cut == handshake.len() - b"BEGIN\r\n".len() { Progress::Other } else { Progress::Partial };
        assert_eq!(progress(&bytes[..cut], &handshake), expected, "cut at {cut}");
    }
    assert!(module_call(&bytes[handshake.len()..]).is_some());
}

#[test]
fn a_client_waiting_for_ok_or_another_uid_or_handshake_goes_to_zbus() {
    let handshake = pipelined_handshake(0);
    // zbus and sd-bus clients stop after AUTH and wait for the server's OK.
    assert_eq!(progress(b"\0AUTH EXTERNAL 30\r\n", &handshake), Progress::Other);
    // Another uid than the socket's peer, or descriptors negotiated.
    assert_eq!(progress(b"\0AUTH EXTERNAL 31303030\r\nBEGIN\r\n", &handshake), Progress::Other);
    assert_eq!(progress(b"\0AUTH EXTERNAL 30\r\nNEGOTIATE_UNIX_FD\r\n", &handshake), Progress::Other);
    let mut not_a_message = handshake.clone();
    not_a_message.push(b'x');
    assert_eq!(progress(&not_a_message, &handshake), Progress::Other);
}

#[test]
fn an_opening_claiming_more_than_the_limit_goes_to_zbus_unread() {
    let handshake = pipelined_handshake(0);
    let mut bytes = handshake.clone();
    let mut primary = [0u8; PRIMARY_HEADER_BYTES];
    primary[0] = b'l';
    primary[1] = 1;
    primary[3] = 1;
    primary[4..8].copy_from_slice(&(OPENING_LIMIT as u32).to_le_bytes());
    primary[8..12].copy_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&primary);
    assert_eq!(progress(&bytes, &handshake), Progress::Other);
}

#[test]
fn only_the_module_calls_as_the_module_sends_them_are_answered_here() {
    let call = |m: Message| module_call(m.data().bytes()).is_some();
    assert!(call(module_message("OpenSessionEx", &("u", "sshd", "pts/1", "h", "", 1u32, 2u32, Vec::<String>::new()))));
    assert!(call(module_message("CheckReauth", &("sudo", "root"))));
    assert!(call(module_message("RecordAuth", &("sudo", "root"))));
    assert!(call(module_message("RecordAuthFailure", &("sudo",))));
    // Other methods, other signatures, other paths or interfaces, no interface.
    assert!(!call(module_message("ListSessions", &())));
    assert!(!call(module_message("CloseSession", &("7",))));
    assert!(!call(Message::method_call("/org/vigil1/session/7", "CloseSession").interface(MANAGER_INTERFACE).build(&(7u64,)).unwrap()));
    assert!(!call(Message::method_call(MANAGER_PATH, "CloseSession").interface("org.example.X").build(&(7u64,)).unwrap()));
    assert!(!call(Message::method_call(MANAGER_PATH, "CloseSession").build(&(7u64,)).unwrap()));
    let no_reply = Message::method_call(MANAGER_PATH, "CloseSession")
        .interface(MANAGER_INTERFACE)
        .with_flags(Flags::NO_REPLY_EXPECTED)
        .build(&(7u64,))
        .unwrap();
    assert!(!call(no_reply));
}

mod same_answers_as_the_object_server {
    //! Each module call, answered here and by zbus's object server serving the same
    //! `ManagerIface`, for the same caller: the same kind of reply, error name, body
    //! signature and body bytes.

    use zbus::connection::Builder;

    use super::*;
    use crate::rpc::manager_iface::ManagerIface;

    fn core() -> Arc<Manager> {
        crate::sessions::manager::manager_for_tests()
    }

    /// A client connected to the object server of `core`, whose peer is `caller`.
    async fn object_server(core: &Arc<Manager>, caller: Caller) -> (zbus::Connection, zbus::Connection) {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let server = Builder::unix_stream(a)
            .server(zbus::Guid::generate())
            .p2p()
            .serve_at(MANAGER_PATH, ManagerIface { core: core.clone(), peer: Some(caller) })
            .build();
        let client = Builder::unix_stream(b).p2p().build();
        let (server, client) = tokio::join!(server, client);
        (server.unwrap(), client.unwrap())
    }

    /// What a reply says, without its serials: its type, error name, body signature and
    /// body bytes.
    type Gist = (Type, Option<String>, String, Vec<u8>);

    fn gist(reply: &Message) -> Gist {
        let header = reply.header();
        let body = reply.body();
        (reply.message_type(), header.error_name().map(|n| n.to_string()), body.signature().to_string(), body.data().bytes().to_vec())
    }

    async fn both<B: serde::Serialize + DynamicType>(caller: Caller, member: &str, body: &B) -> [Gist; 2] {
        let core = core();
        let here = answer(&core, caller, &module_message(member, body)).await.unwrap();
        let (_server, client) = object_server(&core, caller).await;
        let zbus_reply = match client.call_method(None::<&str>, MANAGER_PATH, Some(MANAGER_INTERFACE), member, body).await {
            Ok(reply) => reply,
            Err(zbus::Error::MethodError(_, _, reply)) => reply,
            Err(e) => panic!("{member}: {e}"),
        };
        [gist(&here), gist(&zbus_reply)]
    }

    #[tokio::test]
    async fn refusals_and_answers_match() {
        let me = std::process::id();
        let root = Caller::new(0, me);
        let user = Caller::new(1000, me);
        let cases: Vec<[Gist; 2]> = vec![
            both(root, "CloseSession", &(4_000_000_000u64,)).await,
            both(user, "CloseSession", &(4_000_000_000u64,)).await,
            both(user, "OpenSessionEx", &("root", "sshd", "pts/1", "", "", me, 0u32, Vec::<String>::new())).await,
            both(root, "OpenSessionEx", &("root", "sshd", "pts/1", "", "", 1u32, 0u32, vec!["rhost"])).await,
            both(root, "CheckReauth", &("sudo", "root")).await,
            both(user, "CheckReauth", &("sudo", "root")).await,
            both(root, "RecordAuth", &("sudo", "root")).await,
            both(root, "RecordAuthFailure", &("sudo",)).await,
            both(root, "RecordAuthFailure", &("x".repeat(2000),)).await,
        ];
        for [here, zbus] in &cases {
            assert_eq!(here, zbus, "the quick path and the object server differ");
        }
        assert!(cases.iter().any(|[here, _]| here.0 == Type::Error), "some case is refused");
    }

    #[tokio::test]
    async fn a_registered_session_is_answered_with_its_id_in_the_same_shape() {
        // OpenSessionEx needs uid 0: as another user this test cannot run, and says so.
        assert!(nix::unistd::geteuid().is_root(), "this test needs root (OpenSessionEx is root's only)");
        let me = std::process::id();
        let ses = crate::sys::procfs::audit_session_id(me);
        let root = Caller::new(0, me);
        let [here, zbus] = both(root, "OpenSessionEx", &("root", "vigil-unit", "", "", "", me, ses, Vec::<String>::new())).await;
        assert_eq!((here.0, &here.1, &here.2), (Type::MethodReturn, &None, &"t".to_string()));
        assert_eq!((here.0, here.1, here.2), (zbus.0, zbus.1, zbus.2));
    }
}
