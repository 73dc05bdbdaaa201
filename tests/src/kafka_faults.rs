//! A librdkafka mock cluster a test can slow down or stop, for the outcomes of a produce that
//! fails: refused before anything is sent, or sent and never acknowledged.
//!
//! The mock broker appends a Produce request's records to its log when the request arrives,
//! and its round-trip time only delays the response: a round trip slower than the producer's
//! `message.timeout.ms` is a record stored whose acknowledgement never came.

use std::sync::mpsc;
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

type Cluster = MockCluster<'static, DefaultProducerContext>;
type Job = Box<dyn FnOnce(&Cluster) + Send>;

/// A mock cluster of one broker (id 1). The cluster is not `Send`: a thread of its own owns it
/// and runs what the test asks of it; it lives as long as this handle.
pub struct FaultyKafka {
    pub brokers: String,
    jobs: mpsc::Sender<Job>,
}

impl FaultyKafka {
    pub fn start() -> Self {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready, brokers) = mpsc::channel();
        std::thread::spawn(move || {
            let cluster = Cluster::new(1).expect("start a mock cluster");
            ready.send(cluster.bootstrap_servers()).unwrap();
            for job in inbox {
                job(&cluster);
            }
        });
        Self {
            brokers: brokers.recv().expect("the mock cluster started"),
            jobs,
        }
    }

    /// Runs `job` on the cluster's thread and waits for it.
    fn run(&self, job: impl FnOnce(&Cluster) + Send + 'static) {
        let (done, wait) = mpsc::channel();
        self.jobs
            .send(Box::new(move |cluster| {
                job(cluster);
                let _ = done.send(());
            }))
            .unwrap();
        wait.recv().unwrap();
    }

    /// Creates `topic` with one partition (the mock broker has no CreateTopics API).
    pub fn create_topic(&self, topic: &str) {
        let topic = topic.to_owned();
        // Fails only if the topic exists, which is what the caller wants.
        self.run(move |cluster| drop(cluster.create_topic(&topic, 1, 1)));
    }

    /// Delays every response of the broker by `rtt` (zero: no delay).
    pub fn round_trip(&self, rtt: Duration) {
        self.run(move |cluster| cluster.broker_round_trip_time(1, rtt).unwrap());
    }

    /// Disconnects the broker and refuses new connections.
    pub fn broker_down(&self) {
        self.run(|cluster| cluster.broker_down(1).unwrap());
    }

    pub fn broker_up(&self) {
        self.run(|cluster| cluster.broker_up(1).unwrap());
    }
}
