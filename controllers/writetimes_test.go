package controllers

import (
	"testing"
	"time"
)

func TestWriteTimes(t *testing.T) {
	var w writeTimes[string]
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if !w.last("a").IsZero() {
		t.Fatal("an unknown key has a write time")
	}
	w.wrote("a", t0)
	w.wrote("b", t0.Add(5*time.Second))
	if got := w.last("a"); !got.Equal(t0) {
		t.Fatalf("last(a) = %v", got)
	}
	recent := w.since(t0.Add(12*time.Second), 10*time.Second)
	if len(recent) != 1 || !recent["b"] {
		t.Fatalf("since = %v, want only b", recent)
	}
	if !w.last("a").IsZero() {
		t.Fatal("since did not forget the older write")
	}
	w.wrote("b", time.Time{})
	if !w.last("b").IsZero() {
		t.Fatal("a zero write did not forget")
	}
}
