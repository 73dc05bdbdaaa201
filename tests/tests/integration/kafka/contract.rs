//! The event-stream contract on Kafka, against two brokers: librdkafka's in-process mock
//! cluster, and tansu, a separate Kafka-protocol broker process started by `scripts/test`.

mod mock_cluster {
    use event_processor_core::adapters::kafka::KafkaOptions;
    use event_processor_tests::kafka::MockKafka;

    event_processor_tests::event_stream_contract!(async {
        MockKafka::start().adapter(KafkaOptions::default())
    });
}

mod tansu {
    use event_processor_core::adapters::kafka::KafkaOptions;
    use event_processor_tests::kafka::{adapter, tansu_brokers};

    event_processor_tests::event_stream_contract!(async {
        adapter(&tansu_brokers(), KafkaOptions::default())
    });
}
