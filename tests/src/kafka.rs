//! Kafka test support: the two brokers the Kafka tests run against (librdkafka's in-process
//! mock cluster, and tansu, a separate Kafka-protocol broker process), and a raw consumer that
//! reads records back with their headers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use event_processor_core::adapters::kafka::{KafkaOptions, KafkaStream, topic_name};
use event_processor_core::domain::{ClientId, EventName};
use event_processor_core::envelope::Envelope;
use event_processor_core::ports::{EventSource, EventStream, StreamError};
use event_processor_core::retry::Deadline;
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

/// Variables `scripts/services/30-kafka.sh` exports.
pub const BROKERS_VAR: &str = "EP_TEST_KAFKA_BROKERS";
pub const TANSU_BIN_VAR: &str = "EP_TEST_TANSU_BIN";

/// How long a test waits for a broker it started, or for records it reads back.
const WAIT: Duration = Duration::from_secs(30);

fn required(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: run the tests through scripts/test, which starts tansu")
    })
}

/// The shared tansu broker `scripts/test` started (`HOST:PORT`).
pub fn tansu_brokers() -> String {
    required(BROKERS_VAR)
}

/// What a test asks of its mock cluster.
enum MockCommand {
    CreateTopic(String),
    BrokerDown,
    BrokerUp,
    ProduceErrors(Vec<RDKafkaRespErr>),
}

/// A librdkafka mock cluster of one broker (id 1). The cluster is not `Send`, so a thread of
/// its own owns it and takes commands; it lives as long as this handle.
pub struct MockKafka {
    pub brokers: String,
    commands: mpsc::Sender<(MockCommand, mpsc::Sender<()>)>,
}

impl MockKafka {
    pub fn start() -> Arc<Self> {
        let (commands, inbox) = mpsc::channel::<(MockCommand, mpsc::Sender<()>)>();
        let (ready, brokers) = mpsc::channel();
        std::thread::spawn(move || {
            let cluster: MockCluster<'static, DefaultProducerContext> =
                MockCluster::new(1).expect("start a mock cluster");
            ready.send(cluster.bootstrap_servers()).unwrap();
            for (command, done) in inbox {
                match command {
                    // Fails only if the topic exists, which is what the caller wants.
                    MockCommand::CreateTopic(topic) => drop(cluster.create_topic(&topic, 1, 1)),
                    MockCommand::BrokerDown => cluster.broker_down(1).unwrap(),
                    MockCommand::BrokerUp => cluster.broker_up(1).unwrap(),
                    MockCommand::ProduceErrors(errors) => {
                        cluster.request_errors(RDKafkaApiKey::Produce, &errors)
                    }
                }
                let _ = done.send(());
            }
        });
        Arc::new(Self {
            brokers: brokers.recv().expect("the mock cluster started"),
            commands,
        })
    }

    fn run(&self, command: MockCommand) {
        let (done, wait) = mpsc::channel();
        self.commands.send((command, done)).unwrap();
        wait.recv().unwrap();
    }

    /// Disconnects the broker and refuses new connections.
    pub fn broker_down(&self) {
        self.run(MockCommand::BrokerDown);
    }

    pub fn broker_up(&self) {
        self.run(MockCommand::BrokerUp);
    }

    /// Makes the next Produce requests fail, one error each, in order
    /// (`RD_KAFKA_RESP_ERR__TRANSPORT` drops the connection instead).
    pub fn fail_produce_requests(&self, errors: &[RDKafkaRespErr]) {
        self.run(MockCommand::ProduceErrors(errors.to_vec()));
    }

    /// How many of the errors queued by [`MockKafka::fail_produce_requests`] no Produce request
    /// has met yet. Each queued error fails the next Produce request the broker receives, so a
    /// producer that never retries sends one record at a time to `topic` until one is
    /// accepted: each refusal is one error left over.
    pub async fn unconsumed_produce_errors(&self, topic: &str) -> usize {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "false")
            .set("retries", "0")
            .set("message.timeout.ms", "5000")
            .create()
            .expect("create the probe producer");
        let mut left = 0;
        loop {
            let record = FutureRecord::<(), _>::to(topic).payload("{}");
            match producer.send(record, Duration::from_secs(5)).await {
                Ok(_) => return left,
                Err(_) => left += 1,
            }
            assert!(left <= 1000, "the probe never gets a record accepted");
        }
    }

    /// The Kafka adapter on this cluster. The mock broker does not implement the CreateTopics
    /// admin API, so `prepare` creates the topic through the mock's own API instead
    /// (topic creation through the admin API is tested on tansu).
    pub fn adapter(
        self: &Arc<Self>,
        options: KafkaOptions,
    ) -> (Arc<dyn EventStream>, Arc<dyn EventSource>) {
        let stream =
            Arc::new(KafkaStream::connect(&self.brokers, options).expect("create the producer"));
        (
            Arc::new(MockPrepared {
                inner: stream.clone(),
                mock: self.clone(),
            }),
            stream,
        )
    }
}

/// [`KafkaStream`] with `prepare` done by the mock cluster.
struct MockPrepared {
    inner: Arc<KafkaStream>,
    mock: Arc<MockKafka>,
}

#[async_trait]
impl EventStream for MockPrepared {
    async fn publish(&self, event: &Envelope, deadline: Deadline) -> Result<(), StreamError> {
        self.inner.publish(event, deadline).await
    }

    async fn publish_batch(
        &self,
        events: &[Envelope],
        deadline: Deadline,
    ) -> Vec<Result<(), StreamError>> {
        self.inner.publish_batch(events, deadline).await
    }

    async fn prepare(
        &self,
        client: &ClientId,
        event: &EventName,
        _deadline: Deadline,
    ) -> Result<(), StreamError> {
        self.mock
            .run(MockCommand::CreateTopic(topic_name(client, event)));
        Ok(())
    }
}

/// Options for tests that stop the broker: a short delivery deadline, so a 503 comes quickly.
pub fn impatient() -> KafkaOptions {
    KafkaOptions {
        delivery_timeout: Duration::from_secs(3),
        ..KafkaOptions::default()
    }
}

/// The stream and source of the adapter over `brokers`.
pub fn adapter(
    brokers: &str,
    options: KafkaOptions,
) -> (Arc<dyn EventStream>, Arc<dyn EventSource>) {
    let stream = Arc::new(KafkaStream::connect(brokers, options).expect("create the producer"));
    (stream.clone(), stream)
}

/// A tansu broker process owned by one test, which may pause (SIGSTOP) and resume it.
pub struct Tansu {
    child: Child,
    pub brokers: String,
}

impl Tansu {
    /// Starts tansu on a free loopback port and waits until it accepts connections.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(required(TANSU_BIN_VAR))
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let tansu = Self {
            child,
            brokers: format!("127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(&tansu.brokers).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "tansu did not listen within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        tansu
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Freezes the broker: connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One record as a consumer outside the gateway sees it.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
    pub value: serde_json::Value,
}

/// Reads `count` records of `topic` from the beginning (all partitions) with a plain
/// consumer, failing the test if they do not arrive within the wait.
pub fn read_records(brokers: &str, topic: &str, count: usize) -> Vec<Record> {
    read_records_until(brokers, topic, |records| records.len() >= count)
}

/// The records of the pair's topic, read from the beginning until every id of `ids` is among
/// their `ce_id` headers (failing the test if that does not happen within the wait).
pub async fn records_with_ids(
    brokers: &str,
    client: &ClientId,
    event: &EventName,
    ids: &BTreeSet<String>,
) -> Vec<Record> {
    let (brokers, topic, ids) = (brokers.to_owned(), topic_name(client, event), ids.clone());
    tokio::task::spawn_blocking(move || {
        read_records_until(&brokers, &topic, |records| {
            let seen: BTreeSet<&str> = records
                .iter()
                .filter_map(|r| r.headers.get("ce_id").map(String::as_str))
                .collect();
            ids.iter().all(|id| seen.contains(id.as_str()))
        })
    })
    .await
    .expect("the reading thread")
}

/// Reads records of `topic` from the beginning until `done` says enough arrived, failing the
/// test if that does not happen within the wait.
pub fn read_records_until(
    brokers: &str,
    topic: &str,
    done: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    // Assigned partitions, not a subscription: the (required) group is never joined.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("read-back-{}", crate::unique_client()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("create a consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), WAIT)
        .expect("topic metadata");
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics()[0].partitions() {
        assignment
            .add_partition_offset(topic, partition.id(), Offset::Beginning)
            .expect("add partition");
    }
    assert!(assignment.count() > 0, "topic {topic} has no partitions");
    consumer.assign(&assignment).expect("assign");
    let deadline = std::time::Instant::now() + WAIT;
    let mut records = Vec::new();
    while !done(&records) {
        assert!(
            std::time::Instant::now() < deadline,
            "the records of {topic} did not all arrive within {WAIT:?}; got {records:?}"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("consume");
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| {
                        let value = h.value.map(|v| String::from_utf8(v.to_vec()).unwrap());
                        (h.key.to_owned(), value.unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        records.push(Record {
            key: message.key().map(<[u8]>::to_vec),
            headers,
            value: serde_json::from_slice(message.payload().unwrap_or_default())
                .expect("a JSON record value"),
        });
    }
    records
}

/// How many partitions `topic` has (0 if it does not exist).
pub fn partition_count(brokers: &str, topic: &str) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("create a consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), WAIT)
        .expect("topic metadata");
    metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .sum()
}
