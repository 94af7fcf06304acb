// How the tape gives memory back (core/tape.hpp): values no backward rule reads are dropped
// during forward, once nothing outside the tape holds them, and a graph nothing refers to any
// more is dropped whole. docs/performance.md says what it saves.
#include "core/tape.hpp"

namespace tapegrad {

std::size_t Tape::saved_bytes() const {
    std::size_t bytes = 0;
    for (const auto& e : entries_) {
        if (e.result.defined() && !e.result.released()) bytes += e.result.value().nbytes();
        for (const auto& r : e.more_results)
            if (!r.released()) bytes += r.value().nbytes();
    }
    return bytes;
}

// True when a variable outside the tape (held by the user, or a leaf's create_graph
// gradient) still refers to a live entry's result. Counts the references the tape itself
// holds: one per entry for its result, one per use as an input.
bool Tape::referenced_from_outside() const {
    std::vector<std::size_t> first(entries_.size() + 1, 0);  // entry i's results' counts start
    for (std::size_t i = 0; i < entries_.size(); ++i)
        first[i + 1] = first[i] + 1 + entries_[i].more_results.size();
    std::vector<long> internal(first.back(), 0);
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        if (entries_[i].result.defined()) internal[first[i]] += 1;
        for (std::size_t k = 1; k <= entries_[i].more_results.size(); ++k)
            internal[first[i] + k] += 1;
        for (const auto& in : entries_[i].inputs) {
            const auto* v = in.impl();
            if (v && v->tape == this && v->generation == generation_)
                internal[first[v->index] + v->output] += 1;
        }
    }
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        const Entry& e = entries_[i];
        if (e.result.defined() && e.result.impl_ptr().use_count() > internal[first[i]]) return true;
        for (std::size_t k = 1; k <= e.more_results.size(); ++k)
            if (e.more_results[k - 1].impl_ptr().use_count() > internal[first[i] + k]) return true;
    }
    return false;
}

// Queues entry `index` for release when no rule reads it (release_unread drops it once
// nothing outside the tape holds it).
void Tape::unread(std::uint32_t index) {
    Entry& e = entries_[index];
    if (e.readers == 0 && !e.queued && index >= release_floor_) {
        e.queued = true;
        release_queue_.push_back(index);
    }
}

// Drops the values of queued entries that no backward rule reads once nothing outside the
// tape holds them: the tape's own references are the entry's result and its later uses as
// an input. A value still held stays queued; one a later rule reads leaves the queue.
namespace {
void release(const Variable& v) {  // drops the value; its shape and dtype stay known
    detail::VarImpl* impl = v.impl();
    impl->released_shape = impl->value.shape();
    impl->released_dtype = impl->value.dtype();
    impl->value = Tensor();
    impl->released = true;
}
}  // namespace

void Tape::release_unread() {
    records_since_release_ = 0;
    std::size_t kept = 0;
    for (std::uint32_t index : release_queue_) {
        Entry& e = entries_[index];
        if (e.readers > 0 || !e.result.defined() || e.result.released()) {
            e.queued = false;
            continue;
        }
        // The tape holds each result once and once per use as a later input (of any result)
        long refs = e.result.impl_ptr().use_count();
        for (const auto& r : e.more_results) refs += r.impl_ptr().use_count();
        if (refs == static_cast<long>(1 + e.more_results.size() + e.uses)) {
            release(e.result);
            for (auto& r : e.more_results) release(r);
            e.queued = false;
            continue;
        }
        release_queue_[kept++] = index;
    }
    release_queue_.resize(kept);
}

}  // namespace tapegrad
