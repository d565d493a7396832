//! Signed-cookie persistence (and its fallback when the backend is down or drained), and
//! Maglev on a header.

use crate::common::*;

const COOKIE: &str = "cookie = { name = \"FGSRV\", key = \"0123456789abcdef-test-key\" }";

fn set_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
}

async fn send(c: &reqwest::Client, url: &str, cookie: Option<&str>) -> (String, Option<String>) {
    let mut req = c.get(url);
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    let set = set_cookie(&r);
    (r.text().await.unwrap(), set)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_keeps_the_client_on_its_backend_and_moves_it_when_that_one_goes() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let c3 = Backend::start("c").await;
    let p = start(&plain(&pool("web", "round-robin", COOKIE, &[&a, &b, &c3]))).await;
    let c = client();
    let url = p.url("/");

    // The first answer pins; every later request with the cookie goes to the same backend
    // (round robin would have moved it) and is not given a new cookie.
    let (first, cookie) = send(&c, &url, None).await;
    let cookie = cookie.expect("a persistence cookie");
    assert!(
        !cookie.contains("127.0.0.1"),
        "the cookie shows the backend: {cookie}"
    );
    for _ in 0..10 {
        let (name, set) = send(&c, &url, Some(&cookie)).await;
        assert_eq!(name, first);
        assert_eq!(set, None);
    }

    // A forged cookie (another backend's id with this tag) does not pin: the balancer
    // picks and a fresh cookie comes back.
    let (id, tag) = cookie.trim_start_matches("FGSRV=").split_once('.').unwrap();
    let forged = format!("FGSRV={}.{tag}", id.chars().rev().collect::<String>());
    let (_, set) = send(&c, &url, Some(&forged)).await;
    assert!(set.is_some_and(|s| s != forged));

    // Drained through the admin API: the client moves and gets a new cookie, which then
    // holds.
    let pinned = [&a, &b, &c3].into_iter().find(|x| x.name == first).unwrap();
    let drain = format!("/backends/web/{}/drain", pinned.addr);
    let answer = flowgate_driver::admin::client::post(p.proxy.admin, &drain)
        .await
        .unwrap();
    assert!(answer.is_success(), "{answer:?}");
    let (moved_to, new_cookie) = send(&c, &url, Some(&cookie)).await;
    assert_ne!(moved_to, first);
    let new_cookie = new_cookie.expect("a new cookie after the move");
    for _ in 0..5 {
        assert_eq!(
            send(&c, &url, Some(&new_cookie)).await,
            (moved_to.clone(), None)
        );
    }

    // Killed (down): same, without any admin action, the request still succeeds.
    let now = [&a, &b, &c3]
        .into_iter()
        .find(|x| x.name == moved_to)
        .unwrap();
    now.kill().await;
    let (third, newest) = send(&c, &url, Some(&new_cookie)).await;
    assert!(third != moved_to && third != first, "{third}");
    assert!(newest.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maglev_on_a_header_keeps_each_key_on_one_backend() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let refs: Vec<&Backend> = backends.iter().collect();
    let p = start(&plain(&pool(
        "web",
        "maglev",
        "hash = \"header:x-user\"",
        &refs,
    )))
    .await;
    let c = client();
    let mut seen = std::collections::HashMap::new();
    for round in 0..3 {
        for user in 0..20 {
            let r = c
                .get(p.url("/"))
                .header("x-user", format!("user-{user}"))
                .send()
                .await
                .unwrap();
            let name = r.text().await.unwrap();
            let first = seen.entry(user).or_insert_with(|| name.clone());
            assert_eq!(*first, name, "user {user} moved in round {round}");
        }
    }
    let distinct: std::collections::HashSet<_> = seen.values().collect();
    assert!(distinct.len() >= 2, "20 keys all on one backend: {seen:?}");
}
