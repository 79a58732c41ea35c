"""The event source mapping from the SQS FIFO queue to the worker: the poller (:mod:`.sqs_poller`) and the event
Lambda builds from a batch and the partial batch response it reads back (:mod:`.sqs_event`)."""
