//! Who is in a call (`livekit_provision_daemon::rooms`), against the **stand-in** for
//! livekit-server: its RoomService answers with the JSON shapes and the 401s livekit-server
//! 1.13.5 was measured to give (docs/DESIGN.md §5), and its stand-in-only
//! `POST /standin/participants` puts participants in rooms without WebRTC.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use livekit_provision::token::{self, TokenRequest, VideoGrants};
use livekit_provision::{ApiKey, Credentials, Hint, Secret};
use livekit_provision_daemon::rooms::{
    self, MAX_IDENTITIES, Occupancy, Refusal, RoomOccupancy, RoomsError,
};
use livekit_provision_daemon::supervise::health;
use livekit_provision_daemon::supervise::{Ensured, LIVEKIT_SERVER, RestartPolicy, Supervisor};

use crate::support::{
    API_KEY, API_SECRET, Node, Reaper, env_with, free_port, standin_participants,
};

const SECOND_KEY: &str = "APIsecondkey5678";
const SECOND_SECRET: &str = "s3condS3condS3condS3condS3condS3cond99";

fn creds(key: &str, secret: &str) -> Credentials {
    Credentials {
        key: ApiKey::new(key).unwrap(),
        secret: Secret::new(secret),
    }
}

fn current() -> Credentials {
    creds(API_KEY, API_SECRET)
}

/// A stand-in livekit-server holding two keys, running until the test ends.
struct Server {
    node: Node,
    sup: Supervisor,
    _reaper: Reaper,
}

impl Server {
    fn start() -> Self {
        let node = Node::with_config(|port| {
            format!(
                "port: {port}\nrtc:\n  tcp_port: 7881\nkeys:\n  {API_KEY}: \"{API_SECRET}\"\n  {SECOND_KEY}: \"{SECOND_SECRET}\"\n"
            )
        });
        let mut reaper = Reaper::default();
        let mut sup = Supervisor::new(node.state.clone(), env_with(&[]), RestartPolicy::default());
        match sup
            .ensure_running(&node.livekit_spec(), Instant::now())
            .unwrap()
        {
            Ensured::Started { pid } => reaper.watch(pid),
            other => panic!("expected a start, got {other:?}"),
        }
        Self {
            node,
            sup,
            _reaper: reaper,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.node.addr()
    }

    /// Stand-in only: `identities` in `room` (`None`: the room ends).
    fn set(&self, room: &str, identities: Option<&[&str]>) {
        standin_participants(self.addr(), room, identities);
    }

    /// A raw Twirp call with a token for `grants`.
    fn twirp(&self, method: &str, body: &str, grants: Option<VideoGrants>) -> health::Answer {
        let jwt = grants.map(|g| {
            token::mint(&current(), &TokenRequest::new("raw", g), SystemTime::now()).unwrap()
        });
        let authorization = jwt.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &authorization {
            headers.push(("Authorization", a));
        }
        health::post(
            self.addr(),
            &format!("/twirp/livekit.RoomService/{method}"),
            &headers,
            body.as_bytes(),
            Duration::from_secs(30),
            1024 * 1024,
        )
        .unwrap()
    }

    fn stop(mut self) {
        self.sup
            .stop(LIVEKIT_SERVER, Duration::from_millis(300))
            .unwrap();
    }
}

fn ask(addr: SocketAddr, candidates: &[Credentials]) -> Result<(Occupancy, String), RoomsError> {
    rooms::occupancy(addr, candidates, SystemTime::now())
        .map(|(o, used)| (o, used.key.as_str().to_owned()))
}

#[test]
fn an_empty_node_has_no_room_and_no_participant() {
    let server = Server::start();
    let (occupancy, used) = ask(server.addr(), &[current()]).unwrap();
    assert_eq!(occupancy, Occupancy::default());
    assert!(occupancy.is_idle());
    assert_eq!(used, API_KEY);
    // What 1.13.5 answers an empty node: every field written, the list empty.
    let raw = server.twirp(
        "ListRooms",
        "{}",
        Some(VideoGrants {
            room_list: Some(true),
            ..VideoGrants::default()
        }),
    );
    assert_eq!(
        (raw.status, raw.body.as_slice()),
        (200, &br#"{"rooms":[]}"#[..])
    );
    assert_eq!(raw.header("content-type"), Some("application/json"));
    server.stop();
}

#[test]
fn participants_are_counted_and_named_room_by_room() {
    let server = Server::start();
    server.set("standup", Some(&["carol", "alice", "bob"]));
    server.set("lobby", Some(&[]));
    let crowd: Vec<String> = (0..150).map(|i| format!("guest-{i:03}")).collect();
    let crowd: Vec<&str> = crowd.iter().map(String::as_str).collect();
    server.set("town hall", Some(&crowd));
    server.set("ended", Some(&["x"]));
    server.set("ended", None);

    let (occupancy, _) = ask(server.addr(), &[current()]).unwrap();
    assert_eq!(occupancy.participants, 153);
    assert!(!occupancy.is_idle());
    let names: Vec<&str> = occupancy.rooms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["lobby", "standup", "town hall"]);
    let standup = &occupancy.rooms[1];
    assert_eq!(standup.participants, 3);
    assert_eq!(standup.identities, ["alice", "bob", "carol"]);
    assert!(standup.sid.starts_with("RM_"), "{}", standup.sid);
    let created = standup.created_at.unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(created <= now && created + 600 > now, "{created} vs {now}");
    assert_eq!(
        occupancy.rooms[0],
        RoomOccupancy {
            participants: 0,
            identities: Vec::new(),
            ..occupancy.rooms[0].clone()
        },
        "an emptied room is listed until livekit ends it"
    );
    let hall = &occupancy.rooms[2];
    assert_eq!(hall.participants, 150);
    assert_eq!(hall.identities.len(), MAX_IDENTITIES);
    assert_eq!(hall.identities[0], "guest-000");

    // The room empties: idle again, though still listed.
    server.set("standup", Some(&[]));
    server.set("town hall", Some(&[]));
    let (occupancy, _) = ask(server.addr(), &[current()]).unwrap();
    assert!(occupancy.is_idle());
    assert_eq!(occupancy.rooms.len(), 3);
    server.stop();
}

#[test]
fn a_key_the_server_does_not_hold_is_a_refusal_of_that_key() {
    let server = Server::start();
    let unknown = creds("APIunknown0000", API_SECRET);
    let err = ask(server.addr(), std::slice::from_ref(&unknown)).unwrap_err();
    let RoomsError::Refused { refused, .. } = &err else {
        panic!("expected a refusal, got {err:?}");
    };
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].key.as_str(), "APIunknown0000");
    assert_eq!(refused[0].reason, Refusal::UnknownKey);
    assert!(err.keys_refused());
    assert!(
        err.hint()
            .unwrap()
            .contains("loads its keys only when it starts")
    );

    let wrong_secret = creds(API_KEY, "anotherSecretAnotherSecretAnother12");
    let err = ask(server.addr(), std::slice::from_ref(&wrong_secret)).unwrap_err();
    assert!(
        matches!(&err, RoomsError::Refused { refused, .. } if refused[0].reason == Refusal::WrongSecret),
        "{err:?}"
    );
    // Neither secret nor token in what is shown.
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(
            !shown.contains("anotherSecret") && !shown.contains("eyJ"),
            "{shown}"
        );
    }

    let now = SystemTime::now();
    assert!(rooms::key_accepted(server.addr(), &current(), now).unwrap());
    assert!(!rooms::key_accepted(server.addr(), &unknown, now).unwrap());
    assert!(!rooms::key_accepted(server.addr(), &wrong_secret, now).unwrap());
    // A token from a clock two hours behind: refused, but that says nothing about the key.
    let behind = now - Duration::from_secs(2 * 3600);
    let err = rooms::key_accepted(server.addr(), &current(), behind).unwrap_err();
    assert!(
        matches!(&err, RoomsError::Refused { refused, .. } if refused[0].reason == Refusal::Clock),
        "{err:?}"
    );
    server.stop();
}

#[test]
fn the_first_key_the_server_accepts_is_used() {
    let server = Server::start();
    server.set("r", Some(&["alice"]));
    let unknown = creds("APIunknown0000", API_SECRET);
    let wrong_secret = creds(API_KEY, "anotherSecretAnotherSecretAnother12");
    let second = creds(SECOND_KEY, SECOND_SECRET);

    let (occupancy, used) = ask(
        server.addr(),
        &[unknown.clone(), wrong_secret.clone(), second],
    )
    .unwrap();
    assert_eq!(used, SECOND_KEY);
    assert_eq!(occupancy.participants, 1);

    let (_, used) = ask(
        server.addr(),
        &[current(), creds(SECOND_KEY, SECOND_SECRET)],
    )
    .unwrap();
    assert_eq!(used, API_KEY, "the current key first");

    let err = ask(server.addr(), &[unknown, wrong_secret]).unwrap_err();
    let RoomsError::Refused { refused, .. } = &err else {
        panic!("expected a refusal, got {err:?}");
    };
    let reasons: Vec<&Refusal> = refused.iter().map(|r| &r.reason).collect();
    assert_eq!(reasons, [&Refusal::UnknownKey, &Refusal::WrongSecret]);
    server.stop();
}

#[test]
fn a_server_that_is_down_is_unreachable() {
    let nothing = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let err = ask(nothing, &[current()]).unwrap_err();
    assert!(matches!(err, RoomsError::Unreachable { .. }), "{err:?}");
    assert!(err.hint().unwrap().contains("livekit-server is running"));
    let err = rooms::key_accepted(nothing, &current(), SystemTime::now()).unwrap_err();
    assert!(matches!(err, RoomsError::Unreachable { .. }), "{err:?}");

    let server = Server::start();
    let addr = server.addr();
    assert!(ask(addr, &[current()]).is_ok());
    server.stop();
    let err = ask(addr, &[current()]).unwrap_err();
    assert!(matches!(err, RoomsError::Unreachable { .. }), "{err:?}");
}

/// The stand-in's RoomService answers as livekit-server 1.13.5 did (docs/DESIGN.md §5).
#[test]
fn the_standins_room_service_answers_as_livekit_1_13_5() {
    let server = Server::start();
    server.set("r1", Some(&["alice"]));
    let list = || VideoGrants {
        room_list: Some(true),
        ..VideoGrants::default()
    };
    let admin = |room: Option<&str>| VideoGrants {
        room_admin: Some(true),
        room: room.map(str::to_owned),
        ..VideoGrants::default()
    };
    let text = |a: &health::Answer| String::from_utf8_lossy(&a.body).into_owned();
    let denied = r#"{"code":"unauthenticated","msg":"permissions denied"}"#;

    // ListRooms needs roomList; no token is not a refusal of the middleware but of the grant.
    for grants in [None, Some(admin(Some("r1")))] {
        let a = server.twirp("ListRooms", "{}", grants);
        assert_eq!((a.status, text(&a).as_str()), (401, denied));
    }
    let a = server.twirp("ListRooms", "{}", Some(list()));
    let rooms: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    let room = &rooms["rooms"][0];
    assert_eq!(room["name"], "r1");
    assert_eq!(room["num_participants"], 1);
    assert!(
        room["creation_time"].is_string(),
        "int64 as a string: {room}"
    );
    assert!(room["turn_password"].is_string());

    // ListParticipants needs roomAdmin and the room named.
    for grants in [list(), admin(None), admin(Some("other"))] {
        let a = server.twirp("ListParticipants", r#"{"room":"r1"}"#, Some(grants));
        assert_eq!((a.status, text(&a).as_str()), (401, denied));
    }
    let a = server.twirp(
        "ListParticipants",
        r#"{"room":"r1"}"#,
        Some(admin(Some("r1"))),
    );
    let listed: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(listed["participants"][0]["identity"], "alice");
    assert_eq!(listed["participants"][0]["state"], "ACTIVE");
    let a = server.twirp(
        "ListParticipants",
        r#"{"room":"nope"}"#,
        Some(admin(Some("nope"))),
    );
    assert_eq!(
        (a.status, text(&a).as_str()),
        (200, r#"{"participants":[]}"#)
    );

    // Twirp's own errors.
    let a = server.twirp("ListRoomz", "{}", Some(list()));
    assert_eq!(a.status, 404);
    assert!(text(&a).contains(r#""code":"bad_route""#), "{}", text(&a));
    let a = server.twirp("ListRooms", "", Some(list()));
    assert_eq!(
        (a.status, text(&a).as_str()),
        (
            400,
            r#"{"code":"malformed","msg":"the json request could not be decoded"}"#
        )
    );
    server.stop();
}
