//! The webhook receiver end to end: signatures, status codes, duplicates, orderings and poison,
//! against syncd in-process and the real local Postgres.

mod common;
use common::*;
use serde_json::{Value, json};

fn room_started(tag: &str) -> Value {
    json!({"event": "room_started", "id": format!("EV_{tag}"), "createdAt": now().to_string(),
           "room": {"sid": format!("RM_{tag}"), "name": format!("room-{tag}"), "creationTime": now().to_string()}})
}

async fn sessions(db: &tokio_postgres::Client, sid: &str) -> i64 {
    db.query_one(
        "select count(*) from fred.coaching_sessions where room_sid = $1",
        &[&sid],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn bad_signatures_get_401_and_store_nothing() {
    let tdb = TestDb::new().await;
    let d = start(&tdb.url(), &[]).await;
    let tag = unique("sig");
    let body = room_started(&tag).to_string().into_bytes();
    let t = now();
    let hash = body_hash(&body);
    let hex: String =
        sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&body))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
    let url_hash = hash
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_");
    let base = |extra: Value| {
        let mut c = claims(&body);
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let mut changed = body.clone();
    changed[10] ^= 1;
    let reindented =
        serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&body).unwrap()).unwrap();
    let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        ("no header", body.clone(), None),
        (
            "wrong secret",
            body.clone(),
            Some(jwt(
                "HS256",
                "another-secret-entirely-0123456789",
                &claims(&body),
            )),
        ),
        (
            "unknown iss",
            body.clone(),
            Some(jwt("HS256", SECRET, &base(json!({"iss": "APIother"})))),
        ),
        (
            "expired beyond the leeway",
            body.clone(),
            Some(jwt(
                "HS256",
                SECRET,
                &base(json!({"exp": t - 90, "nbf": t - 400, "iat": t - 400})),
            )),
        ),
        (
            "nbf beyond the leeway",
            body.clone(),
            Some(jwt("HS256", SECRET, &base(json!({"nbf": t + 90})))),
        ),
        (
            "no exp",
            body.clone(),
            Some(jwt("HS256", SECRET, &base(json!({"exp": null})))),
        ),
        (
            "no sha256",
            body.clone(),
            Some(jwt("HS256", SECRET, &base(json!({"sha256": null})))),
        ),
        (
            "hex sha256",
            body.clone(),
            Some(jwt("HS256", SECRET, &base(json!({"sha256": hex})))),
        ),
        (
            "base64url sha256",
            body.clone(),
            Some(jwt("HS256", SECRET, &base(json!({"sha256": url_hash})))),
        ),
        (
            "alg HS512",
            body.clone(),
            Some(jwt("HS512", SECRET, &claims(&body))),
        ),
        (
            "alg none",
            body.clone(),
            Some(jwt("none", SECRET, &claims(&body))),
        ),
        (
            "Bearer prefix",
            body.clone(),
            Some(format!("Bearer {}", sign(&body))),
        ),
        ("garbage token", body.clone(), Some("not.a.jwt".into())),
        ("one byte changed", changed.clone(), Some(sign(&body))),
        ("re-indented", reindented.clone(), Some(sign(&body))),
    ];
    for (name, b, auth) in cases {
        assert_eq!(
            post_raw(&d.url, b, auth).await,
            401,
            "{name} must be rejected"
        );
    }
    // Two Authorization headers are refused even if one is valid.
    let two = http()
        .post(format!("{}/livekit/webhook", d.url))
        .header("authorization", sign(&body))
        .header("authorization", sign(&body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(two.status().as_u16(), 401, "two authorization headers");
    let text = two.text().await.unwrap();
    assert_eq!(text, "unauthorized\n", "no detail that helps an attacker");

    assert_eq!(d.running.state.spool.depth().await.unwrap(), 0);
    assert_eq!(d.running.state.spool.quarantine_depth().await.unwrap(), 0);
    let pg = tdb.pg().await;
    let n: i64 = pg
        .query_one(
            "select count(*) from fred.livekit_events where event_id = $1",
            &[&format!("EV_{tag}")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "nothing reached Postgres");
    let metrics = metrics_text(&d.url).await;
    assert!(
        metrics.contains("syncd_webhooks_rejected_total{reason=\"bad_hash\"} 5"),
        "{metrics}"
    );
    d.running.shutdown().await;
}

#[tokio::test]
async fn accepted_shapes_land_in_postgres() {
    let tdb = TestDb::new().await;
    let d = start(
        &tdb.url(),
        &[(
            "LIVEKIT_EXTRA_KEYS",
            "APIoldkey:old-secret-still-valid-0123456789",
        )],
    )
    .await;
    let pg = tdb.pg().await;
    let t = now();
    let tag = unique("acc");
    // Inside the leeway: expired 30 s ago, not valid for another 30 s.
    let b1 = room_started(&format!("{tag}a")).to_string().into_bytes();
    let mut c = claims(&b1);
    c["exp"] = json!(t - 30);
    assert_eq!(
        post_raw(&d.url, b1.clone(), Some(jwt("HS256", SECRET, &c))).await,
        200,
        "exp 30 s ago"
    );
    let b2 = room_started(&format!("{tag}b")).to_string().into_bytes();
    let mut c = claims(&b2);
    c["nbf"] = json!(t + 30);
    assert_eq!(
        post_raw(&d.url, b2, Some(jwt("HS256", SECRET, &c))).await,
        200,
        "nbf 30 s ahead"
    );
    // snake_case keys, numeric int64 values and unknown fields, as application/json.
    let b3 = json!({"event": "room_started", "id": format!("EV_{tag}c"), "created_at": t, "brand_new_field": {"x": 1},
                    "room": {"sid": format!("RM_{tag}c"), "name": "snake", "creation_time": t, "future": true}})
    .to_string()
    .into_bytes();
    let r = http()
        .post(format!("{}/livekit/webhook", d.url))
        .header("content-type", "application/json")
        .header("authorization", sign(&b3))
        .body(b3)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "snake_case, numbers, unknown fields"
    );
    // A rotated key.
    let b4 = room_started(&format!("{tag}d")).to_string().into_bytes();
    let mut c = claims(&b4);
    c["iss"] = json!("APIoldkey");
    assert_eq!(
        post_raw(
            &d.url,
            b4,
            Some(jwt("HS256", "old-secret-still-valid-0123456789", &c))
        )
        .await,
        200,
        "rotated key"
    );

    let ids: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|s| format!("EV_{tag}{s}"))
        .collect();
    assert_eq!(wait_ledger(&pg, &ids, 20).await, 4);
    let started: Option<std::time::SystemTime> = pg
        .query_one(
            "select started_at from fred.coaching_sessions where room_sid = $1",
            &[&format!("RM_{tag}c")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        started
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
        t
    );
    // A redelivery is a 200 duplicate.
    assert_eq!(post(&d.url, &b1).await, 200);
    d.running.shutdown().await;
}

#[tokio::test]
async fn status_codes() {
    let tdb = TestDb::new().await;
    let d = start(&tdb.url(), &[("SYNCD_MAX_BODY", "2048")]).await;
    let c = http();
    assert_eq!(
        status(c.get(format!("{}/livekit/webhook", d.url))).await,
        405
    );
    assert_eq!(
        status(c.put(format!("{}/livekit/webhook", d.url))).await,
        405
    );
    assert_eq!(status(c.get(format!("{}/healthz", d.url))).await, 200);
    let ready = c.get(format!("{}/readyz", d.url)).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    // At the limit it is read and verified; one byte over is 413.
    let tag = unique("big");
    let mut ev = room_started(&tag);
    let pad = 2048 - ev.to_string().len() - r#","pad":"""#.len();
    ev["pad"] = json!("x".repeat(pad));
    let at_limit = ev.to_string().into_bytes();
    assert_eq!(at_limit.len(), 2048);
    assert_eq!(
        post(&d.url, &at_limit).await,
        200,
        "a body exactly at SYNCD_MAX_BODY"
    );
    ev["pad"] = json!("x".repeat(pad + 1));
    assert_eq!(
        post(&d.url, &ev.to_string().into_bytes()).await,
        413,
        "one byte over SYNCD_MAX_BODY"
    );
    d.running.shutdown().await;
}

#[tokio::test]
async fn database_down_still_acks_and_readyz_says_so() {
    let d = start("postgres://postgres@127.0.0.1:1/nowhere", &[]).await;
    let tag = unique("down");
    assert_eq!(
        post(&d.url, &room_started(&tag).to_string().into_bytes()).await,
        200
    );
    let ready = http()
        .get(format!("{}/readyz", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let body: Value = serde_json::from_str(&ready.text().await.unwrap()).unwrap();
    assert_eq!(body["spool"], "ok");
    assert_ne!(body["database"], "ok");
    // The event waits in the spool, with the syncd record that recording is off for its room.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut keys = Vec::new();
    while std::time::Instant::now() < deadline {
        keys = d
            .running
            .state
            .spool
            .next_batch(10)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.key)
            .collect();
        if keys.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        keys,
        vec![format!("EV_{tag}"), format!("SY_disabled_RM_{tag}")],
        "in arrival order"
    );
    d.running.shutdown().await;
}

#[tokio::test]
async fn storm_of_ten_copies_applies_once() {
    let tdb = TestDb::new().await;
    let d = start(&tdb.url(), &[]).await;
    let pg = tdb.pg().await;
    let tag = unique("storm");
    let events: Vec<Vec<u8>> = call_events()
        .iter()
        .map(|e| retag(e, &tag).to_string().into_bytes())
        .collect();
    let mut tasks = Vec::new();
    for body in &events {
        for _ in 0..10 {
            let (url, body) = (d.url.clone(), body.clone());
            tasks.push(tokio::spawn(async move { post(&url, &body).await }));
        }
    }
    let statuses = futures_util::future::join_all(tasks).await;
    assert!(
        statuses.iter().all(|s| *s.as_ref().unwrap() == 200),
        "every copy gets 200"
    );
    let ids: Vec<String> = call_events()
        .iter()
        .map(|e| format!("{}_{tag}", e["id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        wait_ledger(&pg, &ids, 30).await,
        8,
        "each event applied once"
    );
    assert_eq!(sessions(&pg, &format!("RM_{tag}")).await, 1);
    let row = outcome(&pg, &format!("RM_{tag}")).await.unwrap();
    assert_eq!(
        (row["status"].as_str(), row["recording_status"].as_str()),
        (Some("ended"), Some("uploaded"))
    );
    let m = metrics_text(&d.url).await;
    let dups: u64 = m
        .lines()
        .find(|l| l.starts_with("syncd_webhooks_duplicate_total"))
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(dups, 72, "80 requests, 8 stored, 72 duplicates");
    d.running.shutdown().await;
}

fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let x = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, x);
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn every_order_gives_the_same_row() {
    let tdb = TestDb::new().await;
    let d = start(&tdb.url(), &[]).await;
    let pg = tdb.pg().await;
    let call = call_events();
    // room_started, participant_joined, egress_started, egress_ended, room_finished
    let picked = [0usize, 1, 2, 6, 7];
    let run = unique("ord");
    let reference = format!("{run}ref");
    for &i in &picked {
        assert_eq!(
            post(
                &d.url,
                &retag(&call[i], &reference).to_string().into_bytes()
            )
            .await,
            200
        );
    }
    let perms = permutations(&picked);
    assert_eq!(perms.len(), 120);
    let mut tasks = Vec::new();
    for (n, p) in perms.iter().enumerate() {
        let (url, tag, bodies) = (
            d.url.clone(),
            format!("{run}p{n}"),
            p.iter()
                .map(|&i| {
                    retag(&call[i], &format!("{run}p{n}"))
                        .to_string()
                        .into_bytes()
                })
                .collect::<Vec<_>>(),
        );
        tasks.push(tokio::spawn(async move {
            for b in bodies {
                assert_eq!(post(&url, &b).await, 200, "{tag}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut ids = Vec::new();
    for n in 0..perms.len() {
        for &i in &picked {
            ids.push(format!("{}_{run}p{n}", call[i]["id"].as_str().unwrap()));
        }
    }
    assert_eq!(wait_ledger(&pg, &ids, 60).await as usize, ids.len());
    let want = outcome(&pg, &format!("RM_{reference}"))
        .await
        .unwrap()
        .to_string()
        .replace(&reference, "T");
    for (n, order) in perms.iter().enumerate() {
        let tag = format!("{run}p{n}");
        let got = outcome(&pg, &format!("RM_{tag}"))
            .await
            .unwrap()
            .to_string()
            .replace(&tag, "T");
        assert_eq!(got, want, "order {order:?}");
    }
    d.running.shutdown().await;
}

#[tokio::test]
async fn poison_is_quarantined_and_never_blocks_neighbours() {
    let tdb = TestDb::new().await;
    let d = start(&tdb.url(), &[]).await;
    let pg = tdb.pg().await;
    let tag = unique("poison");
    let nul = format!(
        r#"{{"event":"room_started","id":"EV_{tag}nul","room":{{"sid":"RM_{tag}nul","name":"a\u0000b"}}}}"#
    );
    let surrogate = format!(
        r#"{{"event":"room_started","id":"EV_{tag}sur","room":{{"sid":"RM_{tag}sur","name":"\ud800"}}}}"#
    );
    let bad_type = format!(
        r#"{{"event":"room_started","id":"EV_{tag}typ","createdAt":"tomorrow","room":{{"sid":"RM_{tag}typ"}}}}"#
    );
    let unknown = format!(
        r#"{{"event":"agent_job_started","id":"EV_{tag}unk","room":{{"sid":"RM_{tag}unk"}}}}"#
    );
    let no_id = format!(r#"{{"event":"room_started","room":{{"sid":"RM_{tag}noid"}}}}"#);
    let not_json = b"{\"event\": room_started".to_vec();
    let good = room_started(&format!("{tag}ok")).to_string();
    for body in [
        nul.as_bytes(),
        surrogate.as_bytes(),
        bad_type.as_bytes(),
        unknown.as_bytes(),
        no_id.as_bytes(),
        &not_json,
        good.as_bytes(),
    ] {
        assert_eq!(
            post(&d.url, body).await,
            200,
            "a signed body always gets 200: {}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(
        wait_ledger(&pg, &[format!("EV_{tag}ok"), format!("EV_{tag}unk")], 20).await,
        2,
        "neighbours land"
    );
    let outcome: String = pg
        .query_one(
            "select outcome from fred.livekit_events where event_id = $1",
            &[&format!("EV_{tag}unk")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        outcome, "ignored",
        "an unknown event type is stored and ignored"
    );
    // The drainer quarantines the two the database refuses; the door quarantines the three it cannot key.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let q = loop {
        let q = d.running.state.spool.list_quarantine().await.unwrap();
        if q.len() >= 6 || std::time::Instant::now() > deadline {
            break q;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let mut states: Vec<(String, Option<String>)> = q
        .iter()
        .map(|q| (q.key.clone(), q.sqlstate.clone()))
        .collect();
    states.sort();
    assert_eq!(states.len(), 6, "{states:?}");
    assert!(
        states.contains(&(format!("SY_disabled_RM_{tag}nul"), Some("22P05".into()))),
        "the syncd record derived from the poison event is poison too: {states:?}"
    );
    assert!(
        states.contains(&(format!("EV_{tag}nul"), Some("22P05".into()))),
        "{states:?}"
    );
    assert!(
        states.contains(&(format!("EV_{tag}typ"), Some("22023".into()))),
        "{states:?}"
    );
    assert_eq!(
        states
            .iter()
            .filter(|(k, s)| k.starts_with("sha256:") && s.is_none())
            .count(),
        3,
        "{states:?}"
    );
    // A neighbour may still be on its way through the drain: wait for the queue to empty.
    let spool = d.running.state.spool.clone();
    eventually(20, "nothing is left blocking the queue", || {
        let spool = spool.clone();
        async move { spool.depth().await.unwrap() == 0 }
    })
    .await;
    // Replayed poison goes back to quarantine instead of looping.
    assert_eq!(
        d.running
            .state
            .spool
            .replay(Some(format!("EV_{tag}typ")))
            .await
            .unwrap(),
        1
    );
    d.running.state.drain_wakeup.notify_one();
    eventually(20, "the replayed event is back in quarantine", || {
        let spool = spool.clone();
        async move {
            spool.depth().await.unwrap() == 0 && spool.quarantine_depth().await.unwrap() == 6
        }
    })
    .await;
    d.running.shutdown().await;
}
