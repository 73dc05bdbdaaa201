//! Reading Kinesis back for `listen` and the tests: every shard, from its start or its end,
//! keeping the records of one pair.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::ShardIteratorType;

use super::{KinesisEventStream, unavailable};
use crate::adapters::aws;
use crate::domain::{ClientId, EventName};
use crate::envelope::CloudEvent;
use crate::ports::{EventSource, StartAt, StreamError, Subscription};

/// A subscription's pause when no shard had anything new.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// GetRecords calls per shard in one `next_batch` (Kinesis allows 5 per second per shard).
const READS_PER_SHARD: usize = 4;

impl KinesisEventStream {
    /// Every shard of the stream, open or closed, following ListShards pagination.
    async fn shard_ids(&self) -> Result<Vec<String>, StreamError> {
        let mut ids = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            // With a NextToken, ListShards must not be given the stream name.
            let request = match next_token.take() {
                Some(token) => self.client.list_shards().next_token(token),
                None => self.client.list_shards().stream_name(&self.stream),
            };
            let page = request.send().await.map_err(unavailable)?;
            ids.extend(page.shards().iter().map(|s| s.shard_id().to_owned()));
            match page.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(ids),
            }
        }
    }

    async fn shard_iterator(
        &self,
        shard: &str,
        position: &Position,
    ) -> Result<Option<String>, StreamError> {
        let request = self
            .client
            .get_shard_iterator()
            .stream_name(&self.stream)
            .shard_id(shard);
        let request = match position {
            Position::Start(StartAt::Beginning) => {
                request.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            Position::Start(StartAt::End) => request.shard_iterator_type(ShardIteratorType::Latest),
            Position::After(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(sequence),
        };
        let output = request.send().await.map_err(unavailable)?;
        Ok(output.shard_iterator().map(str::to_owned))
    }
}

/// Where a shard reader (re)starts.
#[derive(Debug, Clone)]
enum Position {
    Start(StartAt),
    After(String),
}

#[derive(Debug)]
struct ShardReader {
    id: String,
    /// `None` once the shard is closed and read to its end.
    iterator: Option<String>,
    /// Where to resume if the iterator expires (iterators live 5 minutes).
    resume: Position,
}

#[async_trait]
impl EventSource for KinesisEventStream {
    /// Reads every shard (TRIM_HORIZON for `Beginning`, LATEST for `End`) and keeps the pair's
    /// records, recognised by their CloudEvent `source` and `type`.
    async fn subscribe(
        &self,
        client: &ClientId,
        event: &EventName,
        start: StartAt,
    ) -> Result<Box<dyn Subscription>, StreamError> {
        let mut subscription = KinesisSubscription {
            stream: self.clone(),
            source: format!("/{client}"),
            event_type: event.to_string(),
            shards: Vec::new(),
            known: HashSet::new(),
        };
        subscription.add_new_shards(start).await?;
        Ok(Box::new(subscription))
    }
}

struct KinesisSubscription {
    stream: KinesisEventStream,
    source: String,
    event_type: String,
    shards: Vec<ShardReader>,
    known: HashSet<String>,
}

impl KinesisSubscription {
    /// Starts a reader on every shard not seen yet: at subscription, and when a shard closes
    /// (resharding: its children start where it ended, so they are read from their start).
    async fn add_new_shards(&mut self, start: StartAt) -> Result<(), StreamError> {
        for id in self.stream.shard_ids().await? {
            if self.known.contains(&id) {
                continue;
            }
            let resume = Position::Start(start);
            let iterator = self.stream.shard_iterator(&id, &resume).await?;
            self.known.insert(id.clone());
            self.shards.push(ShardReader {
                id,
                iterator,
                resume,
            });
        }
        Ok(())
    }

    /// One pass over every shard, each read until it is caught up (bounded).
    async fn read_all_shards(&mut self) -> Result<Vec<CloudEvent>, StreamError> {
        let mut events = Vec::new();
        let mut shard_closed = false;
        for index in 0..self.shards.len() {
            for _ in 0..READS_PER_SHARD {
                let Some(iterator) = self.shards[index].iterator.clone() else {
                    break;
                };
                let read = self
                    .stream
                    .client
                    .get_records()
                    .shard_iterator(iterator)
                    .send()
                    .await;
                let output = match read {
                    Ok(output) => output,
                    Err(error)
                        if error
                            .as_service_error()
                            .and_then(ProvideErrorMetadata::code)
                            == Some("ExpiredIteratorException") =>
                    {
                        let shard = &self.shards[index];
                        let iterator = self.stream.shard_iterator(&shard.id, &shard.resume).await?;
                        self.shards[index].iterator = iterator;
                        continue;
                    }
                    // Over the shard's read limit: the next batch will catch up.
                    Err(error) if aws::is_transient(&error) => break,
                    Err(error) => return Err(unavailable(error)),
                };
                let shard = &mut self.shards[index];
                for record in output.records() {
                    shard.resume = Position::After(record.sequence_number().to_owned());
                    match serde_json::from_slice::<CloudEvent>(record.data().as_ref()) {
                        Ok(event) => {
                            if event.source == self.source && event.event_type == self.event_type {
                                events.push(event);
                            }
                        }
                        // The stream is shared: a record some other producer wrote is not ours
                        // to fail on.
                        Err(error) => tracing::warn!(
                            shard = %shard.id,
                            sequence = record.sequence_number(),
                            %error,
                            "skipping a record that is not a CloudEvent"
                        ),
                    }
                }
                shard.iterator = output.next_shard_iterator().map(str::to_owned);
                shard_closed |= shard.iterator.is_none();
                let caught_up = match output.millis_behind_latest() {
                    Some(behind) => behind == 0,
                    None => output.records().is_empty(),
                };
                if caught_up {
                    break;
                }
            }
        }
        if shard_closed {
            self.add_new_shards(StartAt::Beginning).await?;
        }
        Ok(events)
    }
}

#[async_trait]
impl Subscription for KinesisSubscription {
    /// Kinesis orders records only within a shard and the partition key (the event id)
    /// spreads a pair over every shard, so each batch is put back in acceptance order by id
    /// (UUID v7). Waits [`POLL_INTERVAL`] and reads once more when nothing was new.
    async fn next_batch(&mut self) -> Result<Vec<CloudEvent>, StreamError> {
        let mut events = self.read_all_shards().await?;
        if events.is_empty() {
            tokio::time::sleep(POLL_INTERVAL).await;
            events = self.read_all_shards().await?;
        }
        events.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(events)
    }
}
