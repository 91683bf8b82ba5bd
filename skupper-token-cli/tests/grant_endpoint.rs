//! Skupper 2.x grant redemptions on the claims endpoint, over real TLS on
//! 127.0.0.1: `curl` redeems an AccessToken over HTTP/1.1 and HTTP/2 and
//! gets Skupper's statuses and bodies; this crate's hyper client redeems
//! one for a site whose link then has credentials; 1.x claims on the same
//! endpoint answer as before.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr
)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};

use skupper_token::link::LinkState;
use skupper_token::site::{LinkOptions, Site, SiteConfig, TokenOptions};
use skupper_token::store::MemoryStore;
use skupper_token::token::Token;
use skupper_token::v2::{AccessToken, GrantOptions};
use skupper_token_cli::os_random::OsRandom;
use skupper_token_cli::runtime::claims::{
    serve, ClaimsEndpoint, EndpointOptions, ServerEvent, Shutdown, SiteClaims,
};
use skupper_token_cli::runtime::redeem::RedeemClient;
use time::OffsetDateTime;
use tokio::net::TcpListener;

struct West {
    site: Arc<Site<MemoryStore>>,
    addr: SocketAddr,
    stop: Shutdown,
    events: Arc<Mutex<Vec<ServerEvent>>>,
    dir: tempfile::TempDir,
}

fn site(name: &str, port: u16) -> Arc<Site<MemoryStore>> {
    Arc::new(
        Site::create(
            MemoryStore::new(),
            &SiteConfig::new(name)
                .hosts(["127.0.0.1"])
                .ports(port, 55671, 45671),
            OffsetDateTime::now_utc() - time::Duration::minutes(1),
            &mut OsRandom::new(),
        )
        .unwrap(),
    )
}

async fn west() -> West {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let site = site("west", addr.port());
    let endpoint = ClaimsEndpoint::new(
        Arc::new(SiteClaims::new(site.clone())),
        EndpointOptions::default(),
    );
    let (stop, watch) = Shutdown::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let events = events.clone();
        Arc::new(move |e: &ServerEvent| events.lock().unwrap().push(e.clone()))
    };
    tokio::spawn(serve(listener, endpoint, watch, sink));
    West {
        site,
        addr,
        stop,
        events,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl West {
    fn grant(&self, name: &str, allowed: u32) -> AccessToken {
        let options = GrantOptions {
            redemptions_allowed: allowed,
            ..GrantOptions::new(name)
        };
        self.site
            .issue_grant(&options, OffsetDateTime::now_utc(), &mut OsRandom::new())
            .unwrap()
            .1
    }

    /// POSTs `code` to `url` with curl (`http`: `--http1.1`, `--http2`)
    /// and `headers`; returns (HTTP version, status, content type, body).
    fn curl(
        &self,
        url: &str,
        ca_pem: &str,
        code: &str,
        http: &str,
        headers: &[&str],
    ) -> (String, u16, String, String) {
        let ca = self.dir.path().join("ca.crt");
        std::fs::write(&ca, ca_pem).unwrap();
        let body = self.dir.path().join("code");
        std::fs::File::create(&body)
            .unwrap()
            .write_all(code.as_bytes())
            .unwrap();
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", http, "--tlsv1.3", "--cacert"]).arg(&ca);
        for h in headers {
            cmd.args(["-H", h]);
        }
        let out = cmd
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .args(["-w", "\n%{http_version} %{http_code} %{content_type}"])
            .arg(url)
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, last) = text.rsplit_once('\n').expect("curl's -w line");
        let mut last = last.splitn(3, ' ');
        let version = last.next().unwrap().to_owned();
        let status = last.next().unwrap().parse().unwrap();
        let content_type = last.next().unwrap_or_default().to_owned();
        (version, status, content_type, body.to_owned())
    }
}

fn have_curl() -> bool {
    let ok = Command::new("curl").arg("--version").output().is_ok();
    if !ok {
        assert!(
            std::env::var_os("SKUPPER_TOKEN_REQUIRE_TOOLS").is_none(),
            "curl is required"
        );
        eprintln!("skipped: curl not installed");
    }
    ok
}

const EAST_ID: &str = "5d3c8f0e-1a2b-4c3d-9e8f-0a1b2c3d4e5f";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_redeems_a_grant_over_http1_and_http2_with_skuppers_answers() {
    if !have_curl() {
        return;
    }
    let west = west().await;
    let token = west.grant("west-grant", 2);
    let code = token.code.expose().to_owned();
    let headers = ["name: east-link", &format!("subject: {EAST_ID}")];
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let (got, status, content_type, body) = {
            let west = &west;
            let (url, ca, code) = (token.url.clone(), token.ca_pem.clone(), code.clone());
            tokio::task::block_in_place(|| west.curl(&url, &ca, &code, flag, &headers))
        };
        assert_eq!((got.as_str(), status), (version, 200), "{body}");
        assert_eq!(content_type, "text/plain; charset=utf-8");
        let file = skupper_token::v2::LinkFile::decode(body.as_bytes()).unwrap();
        assert_eq!(file.secret.name, "east-link");
        assert_eq!(file.links[0].name, "east-link");
        let cn = skupper_token::pki::certificate_info(
            &skupper_token::pki::pem_to_der(&file.secret.cert_pem).unwrap(),
        )
        .unwrap()
        .common_name;
        assert_eq!(cn.as_deref(), Some(EAST_ID));
    }
    // Both redemptions were made: Skupper's refusals, over both versions.
    let refusals = [
        (code.as_str(), 404, "No such access granted\n"),
        (
            "wrong-code-wrong-code-00",
            403,
            "Redemption of access token refused\n",
        ),
    ];
    for (code, status, message) in refusals {
        for flag in ["--http1.1", "--http2"] {
            let (_, got, _, body) = tokio::task::block_in_place(|| {
                west.curl(&token.url, &token.ca_pem, code, flag, &headers)
            });
            assert_eq!((got, body.as_str()), (status, message), "{flag}");
        }
    }
    // An id no grant has, from a 2.x client: the grant server's 404.
    let (_, got, _, body) = tokio::task::block_in_place(|| {
        let url = format!("https://127.0.0.1:{}/no-such-grant", west.addr.port());
        west.curl(&url, &token.ca_pem, &code, "--http2", &headers)
    });
    assert_eq!((got, body.as_str()), (404, "No such claim\n"));
    let grants = west.site.grants().unwrap();
    assert_eq!(grants[0].redemptions_made, 2);
    let logged: Vec<String> = west
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(
        logged[0].starts_with(&format!("claim {:?} from site {EAST_ID:?}", grants[0].id))
            && logged[0].contains(": 200 redeemed grant: certificate serial "),
        "{logged:#?}"
    );
    assert!(!logged.iter().any(|l| l.contains(&code)), "{logged:#?}");
    west.stop.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_headers_is_routed_by_its_id() {
    if !have_curl() {
        return;
    }
    let west = west().await;
    let token = west.grant("bare", 1);
    let code = token.code.expose().to_owned();
    // No name or subject: a grant of that id is redeemed anyway, the
    // Secret named after the grant, the certificate after it too.
    let (_, status, _, body) = tokio::task::block_in_place(|| {
        west.curl(&token.url, &token.ca_pem, &code, "--http1.1", &[])
    });
    assert_eq!(status, 200, "{body}");
    let file = skupper_token::v2::LinkFile::decode(body.as_bytes()).unwrap();
    assert_eq!(file.secret.name, "bare");
    // A claim's id without 1.x headers: the claim's answer, as before
    // (the missing version is refused first).
    let claim = match west
        .site
        .create_token(
            &TokenOptions::claim(),
            OffsetDateTime::now_utc(),
            &mut OsRandom::new(),
        )
        .unwrap()
    {
        Token::Claim(c) => c,
        Token::Cert(_) => panic!("a claim token"),
    };
    let (_, status, _, body) = tokio::task::block_in_place(|| {
        west.curl(
            &claim.url,
            &claim.ca_pem,
            claim.password.expose(),
            "--http1.1",
            &[],
        )
    });
    assert_eq!(
        (status, body.as_str()),
        (400, "minimum version required 0.8.0\n")
    );
    // With the 1.x headers the claim is redeemed: 1.x is unchanged.
    let (_, status, _, body) = tokio::task::block_in_place(|| {
        west.curl(
            &format!("{}?site-version=1.9.6", claim.url),
            &claim.ca_pem,
            claim.password.expose(),
            "--http2",
            &[&format!("skupper-site-name: {EAST_ID}")],
        )
    });
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("kind: Secret"), "{body}");
    west.stop.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hyper_client_redeems_an_access_token_into_a_link() {
    let west = west().await;
    let token = west.grant("for-east", 1);
    let east = site("east", 1);
    let now = OffsetDateTime::now_utc();
    let created = east
        .create_link(
            token.encode().as_bytes(),
            &LinkOptions::default(),
            now,
            &mut OsRandom::new(),
        )
        .unwrap();
    let redeem = created.grant_redemption.expect("an AccessToken to redeem");
    assert_eq!(redeem.request.subject, east.id());
    let client = RedeemClient::default();
    let answer = client.redeem_grant(&redeem.request).await;
    assert_eq!(answer.as_ref().map(|a| a.0), Ok(200));
    let links = east.handle_grant_redemption(&redeem, answer, now).unwrap();
    assert_eq!(*links[0].state(), LinkState::Connecting);
    assert_eq!(links[0].token_kind(), "link file");
    assert_eq!(links[0].target(), "127.0.0.1:55671");

    // Used up: Skupper's refusal, as the core words it, and nothing left.
    let again = site("north", 1);
    let created = again
        .create_link(
            token.encode().as_bytes(),
            &LinkOptions::default(),
            now,
            &mut OsRandom::new(),
        )
        .unwrap();
    let redeem = created.grant_redemption.unwrap();
    let answer = client.redeem_grant(&redeem.request).await;
    assert_eq!(
        answer
            .as_ref()
            .map(|(s, b)| (*s, String::from_utf8_lossy(b).into_owned())),
        Ok((404, "No such access granted\n".to_owned()))
    );
    let refused = again
        .handle_grant_redemption(&redeem, answer, now)
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "the AccessToken of link \"link1\" was not redeemed: Controller got failed response: 404 (Not Found) No such access granted"
    );
    assert_eq!(again.links().unwrap(), []);
    west.stop.shutdown();
}
