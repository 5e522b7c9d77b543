// Package broker is Piazza's core: the NGSI-LD entity model, the write path that
// commits every change to a JetStream stream, and the read model that every
// replica builds from that stream.
//
// A write is one JetStream publish of an entity's new full state to the subject
// piazza.<tenant>.<Type>.<id> (see subject.go). The publish acknowledgement is
// the commit: nothing is answered as done before it. Concurrent writers are
// kept apart by the server's expected-last-subject-sequence check, so two
// replicas never overwrite each other's changes; a lost race is retried on the
// fresh state. The read model (readmodel.go) applies the stream in order, and a
// writer waits until its own replica has applied the sequence it wrote, so a
// client always reads its own writes.
//
// The HTTP face of the broker lives in the subpackage api; this package knows
// nothing of HTTP beyond the error kinds that the API maps to ProblemDetails.
package broker
