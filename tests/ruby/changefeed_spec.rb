# frozen_string_literal: true

require_relative "spec_helper"
require "tmpdir"

# The changefeed beyond the 0.5.2 specs: the ledger is the changefeed (sequences are log
# positions that survive reopen; cursors carry the ledger's identity; store.changes
# resumes from any cursor), subscriptions that catch up from the log, store close and
# fork, and bad input raising the reference's classes.
RSpec.describe "changefeed attached to a ledger" do

  def wait_for(timeout: 5)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    until yield
      raise "timed out" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.002
    end
  end

  it "numbers facts by their position in the log, in commit order, with the ledger's identity" do
    feed = Igniter::Ledger::ChangefeedBuffer.new
    store = Igniter::Ledger::LedgerStore.new(changefeed: feed)
    expect(store.changefeed).to equal(feed)
    got = Queue.new
    sub = feed.subscribe(stores: [:tasks]) { |e| got << e }
    first = store.write(store: :tasks, key: "t1", value: 1)
    store.write_batch([{ store: :notes, key: "n", value: 0 }, { store: :tasks, key: "t2", value: 2 }])
    store.append(history: :tasks, event: { at: 1 })
    events = Array.new(3) { got.pop }
    expect(events.map(&:sequence)).to eq([1, 3, 4])
    expect(events.map(&:key).first(2)).to eq(%w[t1 t2])
    expect(store.ledger_id).to eq(first.id)
    expect(events.first.cursor).to eq({ sequence: 1, ledger: first.id })
    expect(events.first.to_h[:cursor]).to eq({ sequence: 1, ledger: first.id })
    expect(store.head).to eq({ sequence: 4, ledger: first.id })
    sub.close
  end

  it "changes(after:) reads the log, across reopen, without gaps or repeats" do
    Dir.mktmpdir do |dir|
      path = File.join(dir, "cf.wal")
      cursor = nil
      Igniter::Ledger::LedgerStore.open(path) do |store|
        5.times { |i| store.write(store: i.even? ? :a : :b, key: "k#{i}", value: i) }
        page = store.changes(limit: 2)
        expect(page.map(&:sequence)).to eq([1, 2])
        expect(page.map(&:fact_id)).to eq(store.fact_log_all.first(2).map(&:id))
        cursor = page.last.cursor
      end
      Igniter::Ledger::LedgerStore.open(path) do |store|
        rest = store.changes(after: cursor)
        expect(rest.map(&:sequence)).to eq([3, 4, 5])
        expect(store.changes(after: cursor, stores: [:a]).map(&:key)).to eq(%w[k2 k4])
        # A JSON round trip of the cursor (String keys) works too.
        expect(store.changes(after: { "sequence" => 4, "ledger" => cursor[:ledger] }).size).to eq(1)
        expect(store.changes(after: store.head)).to eq([])
        store.write(store: :a, key: "new", value: 1)
        expect(store.changes(after: rest.last).map(&:sequence)).to eq([6])
      end
    end
  end

  it "replay on an attached buffer reads the ledger: no cursor_too_old" do
    feed = Igniter::Ledger::ChangefeedBuffer.new(max_size: 2)
    store = Igniter::Ledger::LedgerStore.new(changefeed: feed)
    6.times { |i| store.write(store: :s, key: "k#{i}", value: i) }
    r = feed.replay(cursor: { sequence: 1 })
    expect(r[:status]).to eq(:ok)
    expect(r[:events].map(&:sequence)).to eq([2, 3, 4, 5, 6])
    expect(r[:oldest_cursor][:sequence]).to eq(1)
    expect(feed.snapshot[:buffered]).to eq(2)
    expect { feed.emit(Igniter::Ledger::Fact.build(store: :s, key: "x", value: 1)) }.to raise_error(ArgumentError, /follows a ledger/)
  end

  it "a subscriber that falls behind catches up from the log (default policy when attached)" do
    feed = Igniter::Ledger::ChangefeedBuffer.new(subscriber_queue_size: 2)
    store = Igniter::Ledger::LedgerStore.new(changefeed: feed)
    gate = Queue.new
    seen = []
    sub = feed.subscribe do |e|
      gate.pop if seen.empty?
      seen << e.sequence
    end
    50.times { |i| store.write(store: :s, key: "k#{i}", value: i) }
    expect(feed.subscriber_snapshot.first[:lagging]).to be(true)
    gate << :go
    wait_for { seen.size == 50 }
    expect(seen).to eq((1..50).to_a)
    expect(feed.snapshot[:overflow_dropped_total]).to eq(0)
    sub.close
  end

  it "subscribe(after:) resumes a subscription from a cursor: log first, then live" do
    feed = Igniter::Ledger::ChangefeedBuffer.new
    store = Igniter::Ledger::LedgerStore.new(changefeed: feed)
    4.times { |i| store.write(store: :s, key: "k#{i}", value: i) }
    got = Queue.new
    sub = feed.subscribe(after: { sequence: 2 }) { |e| got << e.sequence }
    store.write(store: :s, key: "live", value: 1)
    expect(Array.new(3) { got.pop }).to eq([3, 4, 5])
    sub.close
  end

  it "a raising subscriber is removed and counted, and the write succeeds" do
    feed = Igniter::Ledger::ChangefeedBuffer.new
    store = Igniter::Ledger::LedgerStore.new(changefeed: feed)
    feed.subscribe { raise IOError, "nope" }
    expect(store.write(store: :s, key: "k", value: 1)).to be_a(Igniter::Ledger::Fact)
    wait_for { feed.snapshot[:failed_total] == 1 }
    expect(feed.subscriber_count).to eq(0)
    expect(store.write(store: :s, key: "k", value: 2).value).to eq(2)
  end

  it "runs the block on its own thread; closing the store closes the subscriptions" do
    feed = Igniter::Ledger::ChangefeedBuffer.new
    store = Igniter::Ledger::LedgerStore.new(changefeed: feed)
    threads = Queue.new
    sub = feed.subscribe { |_e| threads << Thread.current }
    store.write(store: :s, key: "k", value: 1)
    expect(threads.pop).not_to equal(Thread.current)
    thread = sub.instance_variable_get(:@record).thread
    store.close
    expect(thread.join(5)).to eq(thread)
    expect(sub).to be_closed
    expect(feed.subscriber_count).to eq(0)
  end

  it "a forked child has no subscriptions" do
    feed = Igniter::Ledger::ChangefeedBuffer.new
    feed.subscribe { |_e| nil }
    reader, writer = IO.pipe
    pid = fork do
      reader.close
      writer.write(feed.subscriber_count.to_s)
      writer.close
      exit!(0)
    end
    writer.close
    Process.wait(pid)
    expect(reader.read).to eq("0")
    expect(feed.subscriber_count).to eq(1)
  end

  describe "bad input raises the reference's classes, naming the argument" do
    it "refuses an unknown policy" do
      expect { Igniter::Ledger::ChangefeedBuffer.new(overflow: :spill) }.to raise_error(ArgumentError, /overflow: unknown overflow policy/)
      expect { Igniter::Ledger::ChangefeedBuffer.new(overflow: 3) }.to raise_error(ArgumentError, /unknown overflow policy/)
      expect { Igniter::Ledger::ChangefeedBuffer.new(close_policy: :later) }.to raise_error(ArgumentError, /close_policy: unknown close_policy/)
    end

    it "refuses a non-positive size" do
      expect { Igniter::Ledger::ChangefeedBuffer.new(subscriber_queue_size: 0) }.to raise_error(ArgumentError, /subscriber_queue_size/)
      expect { Igniter::Ledger::ChangefeedBuffer.new(subscriber_queue_size: -1) }.to raise_error(ArgumentError, /subscriber_queue_size/)
      expect { Igniter::Ledger::ChangefeedBuffer.new(max_size: 0) }.to raise_error(ArgumentError, /max_size/)
      expect { Igniter::Ledger::ChangefeedBuffer.new(alert_thresholds: { typo: 1 }) }.to raise_error(ArgumentError, /unknown alert_threshold keys/)
    end

    it "refuses a malformed cursor" do
      store = Igniter::Ledger::LedgerStore.new
      store.write(store: :s, key: "k", value: 1)
      buf = Igniter::Ledger::ChangefeedBuffer.new
      [5, { seq: 1 }, { sequence: -1 }, { sequence: "1" }, { sequence: 1, ledger: 7 }].each do |bad|
        expect { store.changes(after: bad) }.to raise_error(ArgumentError, /after:/)
        expect { buf.replay(cursor: bad) }.to raise_error(ArgumentError, /cursor:/)
      end
      expect { store.changes(after: { sequence: 0, ledger: "not-a-uuid" }) }.to raise_error(ArgumentError, /after: ledger/)
      expect { store.changes(after: { sequence: 9 }) }.to raise_error(ArgumentError, /past the end/)
      expect { store.changes(limit: 0) }.to raise_error(ArgumentError, /limit:/)
    end

    it "refuses a cursor from another ledger" do
      a = Igniter::Ledger::LedgerStore.new
      b = Igniter::Ledger::LedgerStore.new
      a.write(store: :s, key: "k", value: 1)
      b.write(store: :s, key: "k", value: 1)
      expect { b.changes(after: a.head) }.to raise_error(ArgumentError, /after: .* from another ledger/)
      feed = Igniter::Ledger::ChangefeedBuffer.new
      b2 = Igniter::Ledger::LedgerStore.new(changefeed: feed)
      b2.write(store: :s, key: "k", value: 1)
      expect { feed.replay(cursor: a.head) }.to raise_error(ArgumentError, /another ledger/)
      expect { feed.subscribe(after: a.head) { nil } }.to raise_error(ArgumentError, /another ledger/)
    end

    it "refuses subscribe without a block, and a second ledger for one buffer" do
      feed = Igniter::Ledger::ChangefeedBuffer.new
      expect { feed.subscribe(stores: [:s]) }.to raise_error(ArgumentError, /block/)
      Igniter::Ledger::LedgerStore.new(changefeed: feed)
      expect { Igniter::Ledger::LedgerStore.new(changefeed: feed) }.to raise_error(ArgumentError, /already follows a ledger/)
      expect { Igniter::Ledger::LedgerStore.new(changefeed: Object.new) }.to raise_error(TypeError, /changefeed:/)
    end

    it "raises ChangefeedArgumentError: an ArgumentError and an Igniter::Ledger::Error, with #argument" do
      refused = lambda do |argument, pattern, &blk|
        expect(&blk).to raise_error(Igniter::Ledger::ChangefeedArgumentError, pattern) { |e|
          expect(e).to be_a(ArgumentError)
          expect(Igniter::Ledger::Error === e).to be(true)
          expect(e.argument).to eq(argument)
        }
      end
      refused.call(:overflow, /unknown overflow policy/) { Igniter::Ledger::ChangefeedBuffer.new(overflow: :spill) }
      refused.call(:close_policy, /unknown close_policy/) { Igniter::Ledger::ChangefeedBuffer.new(close_policy: :later) }
      refused.call(:subscriber_queue_size, /positive/) { Igniter::Ledger::ChangefeedBuffer.new(subscriber_queue_size: 0) }
      refused.call(:block, /block/) { Igniter::Ledger::ChangefeedBuffer.new.subscribe(stores: [:s]) }
      a = Igniter::Ledger::LedgerStore.new
      b = Igniter::Ledger::LedgerStore.new
      a.write(store: :s, key: "k", value: 1)
      b.write(store: :s, key: "k", value: 1)
      refused.call(:after, /after: sequence must be/) { a.changes(after: { sequence: -1 }) }
      refused.call(:after, /from another ledger/) { b.changes(after: a.head) }
      refused.call(:after, /past the end/) { a.changes(after: { sequence: 9 }) }
      refused.call(:limit, /limit:/) { a.changes(limit: 0) }
    end
  end

  describe "sequences survive retention" do
    it "keeps each fact's sequence across a prune, a compaction, a checkpoint and reopen; too-old cursors name the horizon" do
      Dir.mktmpdir do |dir|
        path = File.join(dir, "r.wal")
        store = Igniter::Ledger::LedgerStore.open(path)
        facts = (1..6).map { |i| store.write(store: :b, key: "k#{i}", value: i) }
        identity = store.ledger_id
        store.prune_fact_ids(fact_ids: [facts[0].id, facts[1].id, facts[4].id], reason: :test)
        expect(store.first_sequence).to eq(3)
        expected = [[3, facts[2].id], [4, facts[3].id], [6, facts[5].id]]
        read = ->(s, after = { sequence: 2 }) { s.changes(after: after, stores: [:b]).map { |e| [e.cursor[:sequence], e.fact_id] } }
        expect(read.call(store)).to eq(expected)
        expect(store.changes(after: { sequence: 6 }).map { |e| e.store }).to eq([:__fact_prune_receipts])
        expect { store.changes(after: { sequence: 1, ledger: identity }) }.to raise_error(Igniter::Ledger::CursorTooOldError) { |e|
          expect(e).to be_a(ArgumentError)
          expect(e.horizon).to eq({ sequence: 2, ledger: identity })
          expect(e.message).to match(/after: .*too old/)
        }
        feed_replay = Igniter::Ledger::ChangefeedBuffer.new
        store.close
        store = Igniter::Ledger::LedgerStore.open(path, changefeed: feed_replay)
        expect(store.ledger_id).to eq(identity)
        expect(read.call(store)).to eq(expected)
        r = feed_replay.replay(cursor: { sequence: 0 })
        expect(r[:status]).to eq(:cursor_too_old)
        expect(r[:oldest_cursor][:sequence]).to eq(3)
        expect(feed_replay.replay(cursor: { sequence: 2 })[:status]).to eq(:ok)
        store.write(store: :b, key: "k9", value: 9)
        store.checkpoint
        store.close
        store = Igniter::Ledger::LedgerStore.open(path)
        expect(read.call(store)).to eq(expected + [[8, store.changes(after: { sequence: 7 }).first.fact_id]])
        expect(store.head[:sequence]).to eq(8)
        store.close
      end
    end
  end
end
