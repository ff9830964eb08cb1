//! Tests of the RoomService client: the 1.13.5 answers, omitted fields, refusals, masking.
use super::*;

/// What livekit-server 1.13.5 answered `ListRooms` with two live rooms (one room shortened
/// to the fields read, the other as measured, `turn_password` changed).
const ROOMS_1_13_5: &str = r#"{"rooms":[{"sid":"RM_pbMP27VKb72e", "name":"r2", "empty_timeout":300, "departure_timeout":20, "max_participants":0, "creation_time":"1796662035", "creation_time_ms":"1796662035233", "turn_password":"xxxx", "enabled_codecs":[{"mime":"audio/PCMU", "fmtp_line":""}, {"mime":"audio/opus", "fmtp_line":""}], "metadata":"", "num_participants":1, "num_publishers":0, "active_recording":false, "version":null}, {"sid":"RM_BkMXiCvxMBLP", "name":"r1", "creation_time":"1796662034", "num_participants":3}]}"#;

/// What livekit-server 1.13.5 answered `ListParticipants` (one participant, as measured).
const PARTICIPANTS_1_13_5: &str = r#"{"participants":[{"sid":"PA_MQGRYTDoEudM", "identity":"bob", "state":"ACTIVE", "tracks":[], "metadata":"", "joined_at":"1796662035", "joined_at_ms":"1796662035034", "name":"Bob", "version":2, "permission":{"can_subscribe":true, "can_publish":true, "can_publish_data":true, "can_publish_sources":[], "hidden":false, "recorder":false, "can_update_metadata":false, "agent":false, "can_subscribe_metrics":false, "can_manage_agent_session":false}, "region":"", "is_publisher":false, "kind":"STANDARD", "attributes":{}, "disconnect_reason":"UNKNOWN_REASON", "kind_details":[], "data_tracks":[], "client_protocol":2, "capabilities":["CAP_PACKET_TRAILER", "CAP_COMPRESSION_DEFLATE_RAW"]}]}"#;

#[test]
fn reads_the_rooms_livekit_1_13_5_lists() {
    let rooms = parse_rooms(ROOMS_1_13_5.as_bytes()).unwrap();
    assert_eq!(
        rooms,
        [
            ListedRoom {
                sid: "RM_pbMP27VKb72e".into(),
                name: "r2".into(),
                creation_time: Some(1_796_662_035),
            },
            ListedRoom {
                sid: "RM_BkMXiCvxMBLP".into(),
                name: "r1".into(),
                creation_time: Some(1_796_662_034),
            },
        ]
    );
    assert_eq!(
        parse_identities(PARTICIPANTS_1_13_5.as_bytes()).unwrap(),
        ["bob"]
    );
}

#[test]
fn omitted_and_null_fields_are_empty() {
    // livekit-server 1.13.5 writes `{"rooms":[]}`; a proto3 writer that omits empty fields
    // writes `{}`, and some write `null`.
    for empty in [r#"{"rooms":[]}"#, "{}", r#"{"rooms":null}"#] {
        assert!(parse_rooms(empty.as_bytes()).unwrap().is_empty(), "{empty}");
    }
    for empty in [r#"{"participants":[]}"#, "{}", r#"{"participants":null}"#] {
        assert!(parse_identities(empty.as_bytes()).unwrap().is_empty());
    }
    let bare =
        parse_rooms(br#"{"rooms":[{"name":"r"}, {"name":"s","sid":null,"creation_time":null}]}"#)
            .unwrap();
    assert_eq!(bare[0].sid, "");
    assert_eq!(bare[0].creation_time, None);
    assert_eq!(bare[1].creation_time, None);
    assert_eq!(
        parse_identities(br#"{"participants":[{}, {"identity":"a"}]}"#).unwrap(),
        ["", "a"],
        "a participant without an identity still counts"
    );
}

#[test]
fn a_64_bit_integer_is_a_string_or_a_number() {
    let room = |json: &str| parse_rooms(format!(r#"{{"rooms":[{json}]}}"#).as_bytes());
    assert_eq!(
        room(r#"{"creation_time":"17"}"#).unwrap()[0].creation_time,
        Some(17)
    );
    assert_eq!(
        room(r#"{"creation_time":17}"#).unwrap()[0].creation_time,
        Some(17)
    );
    assert_eq!(
        room(r#"{"creation_time":"-1"}"#).unwrap()[0].creation_time,
        None
    );
    assert!(room(r#"{"creation_time":"soon"}"#).is_err());
}

#[test]
fn answers_of_another_shape_are_refused() {
    assert!(parse_rooms(b"OK").is_err());
    assert!(parse_rooms(br#"{"rooms":{}}"#).is_err());
    assert!(parse_rooms(br#"{"rooms":[{"name":7}]}"#).is_err());
    assert!(parse_identities(br#"{"participants":"none"}"#).is_err());
}

#[test]
fn a_refusal_is_read_from_livekits_words_as_measured_on_1_13_5() {
    let read = |body: &str| Refusal::from_body(body.as_bytes());
    assert_eq!(read("invalid API key: APIunknownKEY"), Refusal::UnknownKey);
    assert_eq!(
        read("invalid API key"),
        Refusal::UnknownKey,
        "livekit at HEAD"
    );
    assert_eq!(
        read(
            "invalid token: eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJBIn0.sig, error: token signature is invalid: signature is invalid"
        ),
        Refusal::WrongSecret
    );
    assert_eq!(
        read("invalid token: eyJ.x.y, error: go-jose/go-jose: error in cryptographic primitive"),
        Refusal::WrongSecret,
        "livekit before 1.9"
    );
    assert_eq!(
        read("invalid token: eyJ.x.y, error: token has invalid claims: token is expired"),
        Refusal::Clock
    );
    assert_eq!(
        read("invalid token: eyJ.x.y, error: token has invalid claims: token is not valid yet"),
        Refusal::Clock
    );
    assert_eq!(
        read(r#"{"code":"unauthenticated","msg":"permissions denied"}"#),
        Refusal::Denied
    );
    let other = read("invalid token: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln, error: odd");
    assert_eq!(
        other,
        Refusal::Other("invalid token: ****, error: odd".into())
    );
    assert!(Refusal::UnknownKey.is_key() && Refusal::WrongSecret.is_key());
    assert!(!Refusal::Clock.is_key() && !Refusal::Denied.is_key());
}

#[test]
fn tokens_are_masked_in_the_servers_words() {
    assert_eq!(mask_tokens("a eyJ0.eyJ1.s-_ b"), "a **** b");
    assert_eq!(mask_tokens("x,eyJab.cd,y"), "x,****,y");
    assert_eq!(mask_tokens("no token"), "no token");
    assert_eq!(
        excerpt(b"invalid token: eyJa.b.c\nsecond"),
        "invalid token: ****"
    );
    let long = "x".repeat(300);
    assert_eq!(excerpt(long.as_bytes()).chars().count(), 201);
}

#[test]
fn refused_errors_name_the_keys_and_say_whether_another_may_work() {
    let addr = SocketAddr::from(([127, 0, 0, 1], 7880));
    let key = |k: &str| ApiKey::new(k).unwrap();
    let err = RoomsError::Refused {
        addr,
        refused: vec![
            KeyRefusal {
                key: key("APInew"),
                reason: Refusal::UnknownKey,
            },
            KeyRefusal {
                key: key("APIold"),
                reason: Refusal::WrongSecret,
            },
        ],
    };
    assert_eq!(
        err.to_string(),
        "livekit-server at 127.0.0.1:7880 refused API key APInew (it has not loaded this key), API key APIold (it holds this key with another secret)"
    );
    assert!(err.keys_refused());
    let clock = RoomsError::Refused {
        addr,
        refused: vec![KeyRefusal {
            key: key("APInew"),
            reason: Refusal::Clock,
        }],
    };
    assert!(!clock.keys_refused());
    assert!(
        livekit_provision::Hint::hint(&clock)
            .unwrap()
            .contains("clock")
    );
}

fn creds() -> Credentials {
    Credentials {
        key: ApiKey::new("APIk").unwrap(),
        secret: livekit_provision::Secret::new("s3cretS3cretS3cretS3cretS3cretS3cret12"),
    }
}

/// `occupancy` against a server that answers `response` once.
fn asked(response: &str) -> (Result<Occupancy, RoomsError>, String) {
    let (addr, request) = health::answer_one(Some(response.as_bytes().to_vec()));
    let result = occupancy(addr, &[creds()], SystemTime::now()).map(|(o, _)| o);
    (result, String::from_utf8(request.recv().unwrap()).unwrap())
}

#[test]
fn list_rooms_is_a_twirp_json_post_with_a_room_list_token() {
    let (result, request) = asked("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"rooms\":[]}");
    assert_eq!(result.unwrap(), Occupancy::default());
    assert!(request.starts_with("POST /twirp/livekit.RoomService/ListRooms HTTP/1.1\r\n"));
    assert!(request.contains("\r\nContent-Type: application/json\r\n"));
    assert!(request.ends_with("\r\n\r\n{}"), "{request}");
    let jwt = request
        .lines()
        .find_map(|l| l.strip_prefix("Authorization: Bearer "))
        .unwrap();
    let claims = token::verify(
        jwt,
        |k| (k == "APIk").then(|| creds().secret),
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(
        claims.video,
        Some(VideoGrants {
            room_list: Some(true),
            ..VideoGrants::default()
        }),
        "the one grant ListRooms needs"
    );
    assert!(claims.exp <= claims.nbf.unwrap() + TOKEN_TTL.as_secs());
}

#[test]
fn answers_that_are_not_the_room_service_are_bad_answers() {
    for (response, detail) in [
        (
            "HTTP/1.1 200 OK\r\n\r\nOK",
            "expected value at line 1 column 1",
        ),
        (
            "HTTP/1.1 404 Not Found\r\n\r\n404 page not found",
            "HTTP 404: 404 page not found",
        ),
        (
            "HTTP/1.1 500 Oops\r\n\r\nbroken: eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.c2ln\nmore",
            "HTTP 500: broken: ****",
        ),
        ("not http\r\n\r\n", "not an HTTP response"),
    ] {
        let err = asked(response).0.unwrap_err();
        assert!(
            matches!(&err, RoomsError::BadAnswer { method: "ListRooms", detail: d, .. } if d == detail),
            "{response:?}: {err:?}"
        );
    }
}

#[test]
fn occupancy_without_keys_is_an_error_not_an_empty_node() {
    let addr = SocketAddr::from(([127, 0, 0, 1], 9));
    let err = occupancy(addr, &[], SystemTime::now()).unwrap_err();
    assert!(matches!(err, RoomsError::NoKeys { .. }), "{err}");
}

#[test]
fn idle_means_no_participant_even_with_rooms_listed() {
    let mut occupancy = Occupancy {
        rooms: vec![RoomOccupancy {
            name: "emptied".into(),
            ..RoomOccupancy::default()
        }],
        participants: 0,
    };
    assert!(occupancy.is_idle());
    occupancy.participants = 1;
    assert!(!occupancy.is_idle());
}
