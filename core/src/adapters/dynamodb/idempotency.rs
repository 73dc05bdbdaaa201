//! The [`IdempotencyStore`] on DynamoDB: each key one item of its pair's own partition,
//! `idem#{client}#{event}`, whose sort key is the key itself (1–255 visible ASCII characters,
//! or a replay lock's reserved name).
//!
//! An item holds the request's `fingerprint` (Binary, 32 bytes), the `event_ids` it publishes
//! under (a list, in item order), `lease_until` (epoch milliseconds; 0 once released), the
//! `claim` of the request that holds it (a fresh id per `begin`, so that a call whose reply was
//! lost recognises its own write on retry), once finished its answer (`status`, and `body` as
//! Binary, so it is replayed byte for byte), and [`EXPIRES_AT_ATTR`]: its lease's end plus
//! [`IDEMPOTENCY_RETENTION`], then, once completed, the completion plus that retention.
//!
//! `begin` is one conditional PutItem in the common cases: it writes the item if there is
//! none (or only an expired one), and otherwise DynamoDB returns the item it found with the
//! failed condition (`ReturnValuesOnConditionCheckFailure=ALL_OLD`), which says `InProgress`,
//! `Completed` or `Reused`. Conditional writes to one item are serialised, so of concurrent
//! first requests exactly one writes it. A record whose lease ran out or was released is taken
//! over by an UpdateItem conditional on the lease being the one that was read (and the
//! fingerprint the same, and no answer): of concurrent retries exactly one moves the lease, and
//! it resumes under the record's `event_ids`, which no write ever changes.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::{
    CLIENT_KEY, DynamoDbSchemaStore, EVENT_KEY, EXPIRES_AT_ATTR, Item, ItemError, corrupt,
    epoch_seconds, expired, number, string_attr, u64_attr, unavailable, updated_if_present,
};
use crate::adapters::aws;
use crate::domain::{ClientId, EventId, EventName, Fingerprint, IdempotencyKey};
use crate::ports::{Begin, IDEMPOTENCY_RETENTION, IdempotencyStore, KeptAnswer, StoreError};
use crate::retry::{Deadline, retry};

const FINGERPRINT_ATTR: &str = "fingerprint";
const EVENT_IDS_ATTR: &str = "event_ids";
const LEASE_UNTIL_ATTR: &str = "lease_until";
const CLAIM_ATTR: &str = "claim";
const STATUS_ATTR: &str = "status";
const BODY_ATTR: &str = "body";

/// Largest answer body kept: a DynamoDB item holds at most 400 KB, with the key, up to 500
/// event ids and the other attributes. A larger answer (a batch of hundreds of items with
/// many validation errors each) is not kept: the key is released instead, so that a retry
/// runs again at once under the same event ids.
pub const MAX_KEPT_BODY: usize = 300 * 1024;

/// How many times `begin` reads and tries to take a key that others keep changing before it
/// reports the key in progress (each round, another request took or finished it).
const BEGIN_ROUNDS: usize = 4;

/// The partition of a pair's idempotency keys: `idem#{client}#{event}`.
pub fn idempotency_partition(client: &ClientId, event: &EventName) -> String {
    format!("idem#{client}#{event}")
}

/// A kept answer too large for an item; the key was released instead.
#[derive(Debug, thiserror::Error)]
#[error("an answer of {size} bytes is larger than an idempotency item keeps ({MAX_KEPT_BODY})")]
pub struct AnswerTooLarge {
    pub size: usize,
}

fn epoch_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An idempotency item read back.
struct KeyRecord {
    fingerprint: Vec<u8>,
    event_ids: Vec<EventId>,
    /// Epoch milliseconds.
    lease_until: u64,
    claim: Option<String>,
    answer: Option<KeptAnswer>,
}

fn binary_attr<'a>(item: &'a Item, name: &'static str) -> Result<&'a [u8], ItemError> {
    match item.get(name) {
        Some(AttributeValue::B(blob)) => Ok(blob.as_ref()),
        _ => Err(ItemError::Type(name)),
    }
}

fn key_record(item: &Item) -> Result<KeyRecord, ItemError> {
    let event_ids = match item.get(EVENT_IDS_ATTR) {
        Some(AttributeValue::L(ids)) => {
            ids.iter()
                .map(|id| match id {
                    AttributeValue::S(id) => EventId::parse(id)
                        .map_err(|e| ItemError::Id(id.chars().take(64).collect(), e)),
                    _ => Err(ItemError::Type(EVENT_IDS_ATTR)),
                })
                .collect::<Result<_, _>>()?
        }
        _ => return Err(ItemError::Type(EVENT_IDS_ATTR)),
    };
    let answer = match item.get(STATUS_ATTR) {
        None => None,
        Some(_) => Some(KeptAnswer {
            status: u16::try_from(u64_attr(item, STATUS_ATTR)?)
                .map_err(|_| ItemError::Number(STATUS_ATTR))?,
            body: binary_attr(item, BODY_ATTR)?.to_vec(),
        }),
    };
    Ok(KeyRecord {
        fingerprint: binary_attr(item, FINGERPRINT_ATTR)?.to_vec(),
        event_ids,
        lease_until: u64_attr(item, LEASE_UNTIL_ATTR)?,
        claim: item
            .get(CLAIM_ATTR)
            .map(|_| string_attr(item, CLAIM_ATTR).map(str::to_owned))
            .transpose()?,
        answer,
    })
}

/// What a conditional write found.
enum Written {
    /// This call wrote it; the item as it was before, if asked for.
    Yes(Option<Item>),
    /// The condition failed on this item (`None`: there is no item any more).
    No(Option<Item>),
}

/// One `begin`'s request, as written into the item.
struct Attempt<'a> {
    key: Item,
    fingerprint: Fingerprint,
    event_ids: &'a [EventId],
    /// Epoch milliseconds.
    lease_until: u64,
    /// Epoch seconds.
    expires_at: u64,
    claim: String,
}

impl DynamoDbSchemaStore {
    fn idempotency_key(client: &ClientId, event: &EventName, key: &IdempotencyKey) -> Item {
        HashMap::from([
            (
                CLIENT_KEY.to_owned(),
                AttributeValue::S(idempotency_partition(client, event)),
            ),
            (EVENT_KEY.to_owned(), AttributeValue::S(key.to_string())),
        ])
    }

    /// Writes the key's item unless a live one exists (an expired one DynamoDB has not
    /// deleted yet counts as none). On a failed condition, the item found.
    async fn claim_key(
        &self,
        attempt: &Attempt<'_>,
        deadline: Deadline,
    ) -> Result<Written, StoreError> {
        let mut item = attempt.key.clone();
        item.extend([
            (
                FINGERPRINT_ATTR.to_owned(),
                AttributeValue::B(Blob::new(attempt.fingerprint.as_bytes().as_slice())),
            ),
            (
                EVENT_IDS_ATTR.to_owned(),
                AttributeValue::L(
                    attempt
                        .event_ids
                        .iter()
                        .map(|id| AttributeValue::S(id.to_string()))
                        .collect(),
                ),
            ),
            (LEASE_UNTIL_ATTR.to_owned(), number(attempt.lease_until)),
            (
                CLAIM_ATTR.to_owned(),
                AttributeValue::S(attempt.claim.clone()),
            ),
            (EXPIRES_AT_ATTR.to_owned(), number(attempt.expires_at)),
        ]);
        let item = &item;
        let now = epoch_seconds(SystemTime::now());
        let result = retry(self.retry, deadline, move || async move {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(#client) OR #expires <= :now")
                .expression_attribute_names("#client", CLIENT_KEY)
                .expression_attribute_names("#expires", EXPIRES_AT_ATTR)
                .expression_attribute_values(":now", number(now))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await
                .map_err(aws::failure)
        })
        .await;
        let error = match result {
            Ok(_) => return Ok(Written::Yes(None)),
            Err(error) => error,
        };
        match error.failure().and_then(|e| e.as_service_error()) {
            Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                match failed.item() {
                    Some(found) => Ok(Written::No(Some(found.clone()))),
                    // An emulator that does not return the item: read it.
                    None => Ok(Written::No(
                        self.get_item(attempt.key.clone(), None, deadline).await?,
                    )),
                }
            }
            _ => Err(unavailable(error)),
        }
    }

    /// Takes over a record whose lease (`seen_lease`) ran out or was released: moves the lease
    /// to this request, if the lease is still the one read, the fingerprint the same and no
    /// answer kept. Written: the record as it was (its event ids).
    async fn take_over(
        &self,
        attempt: &Attempt<'_>,
        seen_lease: u64,
        deadline: Deadline,
    ) -> Result<Written, StoreError> {
        let key = &attempt.key;
        let result = retry(self.retry, deadline, move || async move {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .update_expression("SET #lease = :lease, #expires = :expires, #claim = :claim")
                .condition_expression(
                    "#lease = :seen AND #fingerprint = :fingerprint AND attribute_not_exists(#status)",
                )
                .expression_attribute_names("#lease", LEASE_UNTIL_ATTR)
                .expression_attribute_names("#expires", EXPIRES_AT_ATTR)
                .expression_attribute_names("#claim", CLAIM_ATTR)
                .expression_attribute_names("#fingerprint", FINGERPRINT_ATTR)
                .expression_attribute_names("#status", STATUS_ATTR)
                .expression_attribute_values(":lease", number(attempt.lease_until))
                .expression_attribute_values(":expires", number(attempt.expires_at))
                .expression_attribute_values(":claim", AttributeValue::S(attempt.claim.clone()))
                .expression_attribute_values(":seen", number(seen_lease))
                .expression_attribute_values(
                    ":fingerprint",
                    AttributeValue::B(Blob::new(attempt.fingerprint.as_bytes().as_slice())),
                )
                .return_values(ReturnValue::AllOld)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await
                .map_err(aws::failure)
        })
        .await;
        let error = match result {
            Ok(output) => return Ok(Written::Yes(output.attributes)),
            Err(error) => error,
        };
        match error.failure().and_then(|e| e.as_service_error()) {
            Some(UpdateItemError::ConditionalCheckFailedException(failed)) => match failed.item() {
                Some(found) => Ok(Written::No(Some(found.clone()))),
                None => Ok(Written::No(
                    self.get_item(attempt.key.clone(), None, deadline).await?,
                )),
            },
            _ => Err(unavailable(error)),
        }
    }

    /// An UpdateItem of an existing key's item (a key that expired meanwhile is left absent).
    async fn update_key(
        &self,
        key: Item,
        update: &'static str,
        names: &[(&'static str, &'static str)],
        values: HashMap<String, AttributeValue>,
        deadline: Deadline,
    ) -> Result<(), StoreError> {
        let mut names: HashMap<String, String> = names
            .iter()
            .map(|(placeholder, name)| ((*placeholder).to_owned(), (*name).to_owned()))
            .collect();
        names.insert("#client".to_owned(), CLIENT_KEY.to_owned());
        let (key, names, values) = (&key, &names, &values);
        let result = retry(self.retry, deadline, move || async move {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .update_expression(update)
                .condition_expression("attribute_exists(#client)")
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .send()
                .await
                .map_err(aws::failure)
        })
        .await;
        // A record already gone (expired, or released) has nothing left to update.
        updated_if_present(result).map(|_| ())
    }
}

#[async_trait]
impl IdempotencyStore for DynamoDbSchemaStore {
    /// A conditional PutItem; when it finds a live record, that record decides, and one whose
    /// lease is over is taken over by a conditional UpdateItem (module documentation). Each
    /// round that loses a race reads the record that won it; after a few rounds of others
    /// changing the key, it is reported in progress.
    async fn begin(
        &self,
        client: &ClientId,
        event: &EventName,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        event_ids: &[EventId],
        lease_until: SystemTime,
        deadline: Deadline,
    ) -> Result<Begin, StoreError> {
        let now = SystemTime::now();
        let attempt = Attempt {
            key: Self::idempotency_key(client, event, key),
            fingerprint,
            event_ids,
            lease_until: epoch_millis(lease_until),
            expires_at: epoch_seconds(lease_until.max(now) + IDEMPOTENCY_RETENTION),
            claim: EventId::new().to_string(),
        };
        // The record as last read, if a write of this call lost to it.
        let mut found: Option<Item> = None;
        let mut took_over = false;
        for _ in 0..BEGIN_ROUNDS {
            let item = match found.take() {
                Some(item) => item,
                None => match self.claim_key(&attempt, deadline).await? {
                    Written::Yes(_) => return Ok(Begin::Started),
                    Written::No(Some(item)) => item,
                    // Deleted between the write and the read: write again.
                    Written::No(None) => continue,
                },
            };
            let now = SystemTime::now();
            if expired(&item, now) {
                continue;
            }
            let record = key_record(&item).map_err(corrupt)?;
            if record.claim.as_deref() == Some(attempt.claim.as_str()) {
                // This call's own write, whose reply was lost and whose retry found it.
                return Ok(if took_over {
                    Begin::Resumed {
                        event_ids: record.event_ids,
                    }
                } else {
                    Begin::Started
                });
            }
            if record.fingerprint != fingerprint.as_bytes() {
                return Ok(Begin::Reused);
            }
            if let Some(answer) = record.answer {
                return Ok(Begin::Completed(answer));
            }
            if record.lease_until > epoch_millis(now) {
                return Ok(Begin::InProgress);
            }
            took_over = true;
            match self
                .take_over(&attempt, record.lease_until, deadline)
                .await?
            {
                Written::Yes(old) => {
                    let event_ids = match old {
                        Some(old) => key_record(&old).map_err(corrupt)?.event_ids,
                        // The lease was the one read, so the record was: its ids are these.
                        None => record.event_ids,
                    };
                    return Ok(Begin::Resumed { event_ids });
                }
                Written::No(current) => found = current,
            }
        }
        Ok(Begin::InProgress)
    }

    /// An UpdateItem of the key's item (if it still exists) with the answer, `body` as Binary;
    /// kept [`IDEMPOTENCY_RETENTION`] from now. An answer larger than [`MAX_KEPT_BODY`] is
    /// not kept: the key is released, and the error says why.
    async fn complete(
        &self,
        client: &ClientId,
        event: &EventName,
        key: &IdempotencyKey,
        answer: &KeptAnswer,
        deadline: Deadline,
    ) -> Result<(), StoreError> {
        if answer.body.len() > MAX_KEPT_BODY {
            self.release(client, event, key, deadline).await?;
            return Err(unavailable(AnswerTooLarge {
                size: answer.body.len(),
            }));
        }
        let expires_at = epoch_seconds(SystemTime::now() + IDEMPOTENCY_RETENTION);
        self.update_key(
            Self::idempotency_key(client, event, key),
            "SET #status = :status, #body = :body, #expires = :expires",
            &[
                ("#status", STATUS_ATTR),
                ("#body", BODY_ATTR),
                ("#expires", EXPIRES_AT_ATTR),
            ],
            HashMap::from([
                (":status".to_owned(), number(answer.status.into())),
                (
                    ":body".to_owned(),
                    AttributeValue::B(Blob::new(answer.body.as_slice())),
                ),
                (":expires".to_owned(), number(expires_at)),
            ]),
            deadline,
        )
        .await
    }

    /// An UpdateItem of the key's item (if it still exists) setting its lease to 0: over.
    async fn release(
        &self,
        client: &ClientId,
        event: &EventName,
        key: &IdempotencyKey,
        deadline: Deadline,
    ) -> Result<(), StoreError> {
        self.update_key(
            Self::idempotency_key(client, event, key),
            "SET #lease = :released",
            &[("#lease", LEASE_UNTIL_ATTR)],
            HashMap::from([(":released".to_owned(), number(0))]),
            deadline,
        )
        .await
    }
}
