//! The dashboard over HTTP against runs played by fake claude: every page and its content,
//! live updates over server-sent events, the same pages from the run folder alone (`cco ui`),
//! the access token of a non-loopback bind, and no secret in any answer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure with a message

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use cco::{Orchestrator, TaskState};
use cco_web::{Dashboard, DEFAULT_ADDR};
use common::{column, get, send, Answer, Events, SECRETS};

const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(60);

fn no_secret(path: &str, answer: &Answer) {
    for secret in SECRETS {
        assert!(
            !answer.head.contains(secret) && !answer.body.contains(secret),
            "{path} shows the secret {secret}"
        );
    }
}

async fn page(addr: SocketAddr, path: &str, status: u16) -> Answer {
    let answer = get(addr, path).await;
    assert_eq!(answer.status, status, "{path}: {}", answer.body);
    no_secret(path, &answer);
    answer
}

/// Every page of the finished run, with what each must show.
async fn check_every_page(addr: SocketAddr, run_dir: &Path) {
    let saved = Orchestrator::read_run(run_dir).unwrap();
    let team = page(addr, "/", 200).await;
    for agent in ["coordinator", "worker-1", "worker-2"] {
        assert!(
            team.body.contains(&format!("href=\"/agent/{agent}\"")),
            "{}",
            team.body
        );
    }
    assert!(team.body.contains("every shared ref"), "the GitActor's row");
    assert!(
        team.body.contains("<td>k1</td>") || team.body.contains("<td>k2</td>"),
        "the credential a worker ran on: {}",
        team.body
    );
    let csp = team.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("script-src 'self'"), "{}", team.head);

    let board = page(addr, "/board", 200).await;
    for task in ["flat/t1", "flat/t2"] {
        assert!(
            column(&board.body, "done").contains(&format!("data-task=\"{task}\"")),
            "{task} is done: {}",
            board.body
        );
    }
    assert!(
        board.body.contains("[REDACTED:k2]"),
        "the title's key is redacted"
    );

    let t1 = page(addr, "/task/flat/t1", 200).await;
    for text in [
        "t1.txt exists",
        "Turns",
        "finished → merged",
        "approved",
        "Add t1.txt",
        "+1",
    ] {
        assert!(
            t1.body.contains(text),
            "task page shows {text:?}: {}",
            t1.body
        );
    }
    assert!(
        t1.body.contains("token=[REDACTED:env.GATEWAY_TOKEN]"),
        "the patch is shown, redacted: {}",
        t1.body
    );
    page(addr, "/task/flat/t2", 200).await;
    page(addr, "/task/flat/nope", 404).await;

    let task = saved
        .snapshot
        .tasks
        .iter()
        .find(|t| t.key == "flat/t1")
        .unwrap();
    let (worker, session) = (
        task.worker.clone().unwrap(),
        task.session_id.clone().unwrap(),
    );
    let log = page(addr, &format!("/agent/{worker}"), 200).await;
    assert!(log.body.contains(&session), "the log lists the transcript");
    assert!(log.body.contains("assigned task flat/t1"), "{}", log.body);
    let transcript = page(addr, &format!("/agent/{worker}/session/{session}"), 200).await;
    assert!(
        transcript.body.contains("t1.txt") && transcript.body.contains("success"),
        "{}",
        transcript.body
    );
    page(addr, &format!("/agent/{worker}/session/00000000"), 404).await;
    page(addr, "/agent/nobody", 404).await;

    let timeline = page(addr, "/timeline", 200).await;
    assert!(timeline.body.contains("<svg"));
    for task in ["flat/t1", "flat/t2"] {
        assert!(
            timeline.body.contains(&format!("data-task=\"{task}\"")),
            "a bar of {task}"
        );
    }
    let svg = page(addr, "/timeline.svg", 200).await;
    assert_eq!(svg.header("content-type").as_deref(), Some("image/svg+xml"));
    assert!(svg.body.starts_with("<svg"), "{}", svg.body);

    let costs = page(addr, "/costs", 200).await;
    for text in [
        "data-credential=\"k1\"",
        "data-credential=\"k2\"",
        "benched until",
        "budget $10.0000",
        "sonnet",
    ] {
        assert!(
            costs.body.contains(text),
            "costs page shows {text:?}: {}",
            costs.body
        );
    }
    page(addr, "/assets/style.css", 200).await;
    page(addr, "/assets/live.js", 200).await;
    page(addr, "/nope", 404).await;
    let post = send(addr, "POST", "/", &[]).await;
    assert_eq!(post.status, 405, "the dashboard is read-only");
    let foreign = send(addr, "GET", "/", &[("Host", "evil.example")]).await;
    assert_eq!(
        foreign.status, 403,
        "a loopback dashboard answers only to its address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_is_served_live_and_from_its_folder_with_every_page_and_no_secret() {
    let project = common::project();
    let config = project.load();
    let handle = Orchestrator::builder(config.clone()).start().await.unwrap();
    let serving = Dashboard::live(&handle, &config)
        .serve(DEFAULT_ADDR)
        .await
        .unwrap();
    let addr = serving.addr();
    assert!(serving.token().is_none(), "loopback needs no token");
    assert_eq!(serving.login_url(), format!("http://{addr}/"));
    cco_testkit::wait_until_async(RUN_TIMEOUT, "t2 running", || {
        let status = handle.status();
        async move {
            status
                .tasks
                .iter()
                .any(|t| t.key == "flat/t2" && t.state == TaskState::Running)
        }
    })
    .await;

    // Live: the board as it is now, then an update when t2 moves on.
    let mut board = Events::open(addr, "/sse?page=/board", &[]).await;
    assert!(board.head.contains("text/event-stream"), "{}", board.head);
    board
        .wait_for("main", UPDATE_TIMEOUT, |main| {
            column(main, "running").contains("data-task=\"flat/t2\"")
        })
        .await
        .expect("the board shows t2 running");
    let log_end = std::fs::metadata(handle.run_dir().join(cco::log::FILE_NAME))
        .unwrap()
        .len();
    let mut log = Events::open(
        addr,
        &format!("/sse?page=/agent/coordinator&from={log_end}"),
        &[],
    )
    .await;
    for path in ["/", "/board", "/timeline", "/costs", "/task/flat/t2"] {
        page(addr, path, 200).await;
    }
    std::fs::write(&project.marker, "go").unwrap();
    let done = board
        .wait_for("main", UPDATE_TIMEOUT, |main| {
            column(main, "done").contains("data-task=\"flat/t2\"")
        })
        .await
        .expect("a live update shows t2 done");
    assert!(!done.contains("<html"), "an update is the page's main only");
    for secret in SECRETS {
        assert!(!done.contains(secret));
    }
    let appended = log
        .wait_for("append", UPDATE_TIMEOUT, |lines| {
            lines.contains("class=\"line")
        })
        .await
        .expect("the coordinator's new log lines arrive");
    assert!(!appended.contains("<html"));

    let summary = tokio::time::timeout(RUN_TIMEOUT, handle.wait())
        .await
        .expect("the run ends");
    assert!(summary.completed, "{}", summary.reason);
    let run_dir = handle.run_dir().to_path_buf();
    check_every_page(addr, &run_dir).await;
    serving.stop().await;

    // The chart of the run, as the CLI writes it at the end.
    let svg = cco_web::write_timeline(&run_dir).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<?xml") && text.contains("data-task=\"flat/t1\""));
    assert!(SECRETS.iter().all(|s| !text.contains(s)));

    // `cco ui`: the same pages from the run folder alone.
    let folder = Dashboard::folder(&run_dir, &config)
        .serve(DEFAULT_ADDR)
        .await
        .unwrap();
    check_every_page(folder.addr(), &run_dir).await;
    let team = page(folder.addr(), "/", 200).await;
    assert!(team.body.contains("finished: complete"), "{}", team.body);
    folder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dashboard_on_a_non_loopback_address_needs_its_token_on_every_request() {
    let project = common::project();
    std::fs::write(&project.marker, "go").unwrap();
    let config = project.load();
    let handle = Orchestrator::builder(config.clone()).start().await.unwrap();
    let summary = tokio::time::timeout(RUN_TIMEOUT, handle.wait())
        .await
        .expect("the run ends");
    assert!(summary.completed, "{}", summary.reason);
    let mut serving = Dashboard::folder(handle.run_dir(), &config)
        .serve("0.0.0.0:0".parse().unwrap())
        .await
        .unwrap();
    let token = serving.token().expect("a token").to_string();
    assert_eq!(
        serving.login_url(),
        format!("{}?token={token}", serving.url())
    );
    serving.record_in(handle.run_dir()).unwrap();
    assert_eq!(
        cco_web::recorded_dashboard(handle.run_dir()),
        Some((serving.url(), true)),
        "cco status finds it, without the token"
    );
    let addr: SocketAddr = format!("127.0.0.1:{}", serving.addr().port())
        .parse()
        .unwrap();
    let cookie_name = format!("cco_token_{}", addr.port());

    for path in [
        "/",
        "/board",
        "/assets/live.js",
        "/timeline.svg",
        "/sse?page=/board",
    ] {
        let refused = get(addr, path).await;
        assert_eq!(refused.status, 401, "{path} without the token");
        assert!(
            !refused.body.contains("coordinator"),
            "{path} shows nothing of the run"
        );
        let wrong = send(
            addr,
            "GET",
            path,
            &[("Authorization", "Bearer 0123456789abcdef0123456789abcdef")],
        )
        .await;
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
    }
    let bearer = format!("Bearer {token}");
    let ok = send(addr, "GET", "/board", &[("Authorization", &bearer)]).await;
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains("data-task=\"flat/t1\""));
    no_secret("/board", &ok);

    let login = get(addr, &format!("/board?token={token}&x=1")).await;
    assert_eq!(login.status, 303);
    assert_eq!(
        login.header("location").as_deref(),
        Some("/board?x=1"),
        "the token leaves the address bar"
    );
    let set = login.header("set-cookie").unwrap();
    assert!(
        set.starts_with(&format!("{cookie_name}={token}")) && set.contains("HttpOnly"),
        "{set}"
    );
    let cookie = format!("{cookie_name}={token}");
    let with_cookie = send(addr, "GET", "/costs", &[("Cookie", &cookie)]).await;
    assert_eq!(with_cookie.status, 200);
    no_secret("/costs", &with_cookie);
    let mut events = Events::open(addr, "/sse?page=/board", &[("Cookie", &cookie)]).await;
    assert!(events.head.starts_with("HTTP/1.1 200"), "{}", events.head);
    events
        .wait_for("main", UPDATE_TIMEOUT, |main| {
            main.contains("data-task=\"flat/t2\"")
        })
        .await
        .expect("the board over SSE with the cookie");
    serving.stop().await;
    assert_eq!(
        cco_web::recorded_dashboard(handle.run_dir()),
        None,
        "the record goes with it"
    );
}
