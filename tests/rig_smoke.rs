//! The rig itself: smtp-sink receives and dumps a message with its envelope; the dump parser
//! reads it back; both processes die with their handles.

mod rig;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

fn smtp_exchange(port: u16, from: &str, rcpts: &[&str], message: &str) {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut w = stream;
    let mut expect = |code: &str| loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read");
        assert!(line.starts_with(code), "expected {code}, got {line:?}");
        if line.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    };
    expect("220");
    write!(w, "EHLO test\r\n").unwrap();
    expect("250");
    write!(w, "MAIL FROM:<{from}>\r\n").unwrap();
    expect("250");
    for r in rcpts {
        write!(w, "RCPT TO:<{r}>\r\n").unwrap();
        expect("250");
    }
    write!(w, "DATA\r\n").unwrap();
    expect("354");
    write!(w, "{message}\r\n.\r\n").unwrap();
    expect("250");
    write!(w, "QUIT\r\n").unwrap();
}

#[tokio::test]
async fn smtp_sink_dumps_messages_with_their_envelope() {
    let sink = rig::SmtpSink::start(&[]);
    smtp_exchange(
        sink.port(),
        "notify@example.com",
        &["a@example.com", "b@example.com"],
        "Subject: hello\r\n =?UTF-8?Q?folded?=\r\nX-Test: 1\r\n\r\nbody",
    );
    let msgs = rig::wait_until(Duration::from_secs(10), || {
        let m = sink.messages();
        (m.len() == 1).then_some(m)
    })
    .await
    .expect("one dumped message");
    let m = &msgs[0];
    assert_eq!(m.mail_from, "notify@example.com");
    assert_eq!(m.rcpt_to, vec!["a@example.com", "b@example.com"]);
    assert_eq!(
        m.header("subject").as_deref(),
        Some("hello =?UTF-8?Q?folded?=")
    );
    assert_eq!(m.header("X-Test").as_deref(), Some("1"));
}

#[tokio::test]
async fn broker_accepts_topics_and_records_read_back_in_order() {
    let broker = rig::Broker::start();
    let topic = format!("smoke-{}", rig::unique());
    broker.create_topic(&topic, 3, true).await;
    let producer = mailgate_notify::produce::producer(&broker.brokers(), &Default::default())
        .expect("producer");
    for i in 0..30 {
        let key = format!("k{}", i % 5);
        let value = format!("v{i}");
        producer
            .send(
                rdkafka::producer::FutureRecord::to(&topic)
                    .key(&key)
                    .payload(&value),
                Duration::from_secs(10),
            )
            .await
            .expect("ack");
    }
    let records = broker.read_to_end(&topic);
    assert_eq!(records.len(), 30);
    // Same key, same partition, in production order.
    for k in 0..5 {
        let key = format!("k{k}");
        let vals: Vec<String> = records
            .iter()
            .filter(|r| r.key.as_deref() == Some(key.as_bytes()))
            .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
            .collect();
        let want: Vec<String> = (0..30)
            .filter(|i| i % 5 == k)
            .map(|i| format!("v{i}"))
            .collect();
        assert_eq!(vals, want);
    }
}
