# frozen_string_literal: true

# The writer half of the process-kill crash test (tests/ruby/crash_spec.rb).
#
#   ruby -I lib tests/ruby/support/crash_writer.rb PATH DURABILITY SEED [THREADS]
#
# Opens the ledger at PATH with `durability:` DURABILITY (fsync | flush), then writes
# until it is killed: single writes to a few hot keys (default causation, so each key
# forms a causation chain), appends with a partition key, `transaction` batches of
# writes and appends, and now and then a checkpoint. Every operation is reported on
# stdout only after the ledger acknowledged it (the call returned), one line per
# operation, written with a single write(2) so a kill never leaves a line half in the
# pipe without its newline:
#
#   OPENING                                    before the ledger is opened
#   READY <fact_count>                         after
#   b <thread> <w|a|B|C>                       before each operation
#   W <id> <store> <key> <thread>              a write
#   A <id> <store> <partition value> <thread>  an append
#   B <batch id> <n> <id1>,<id2>,... <thread>  a transaction of n operations
#   C <fact_count> <thread>                    a checkpoint
#   E <message>                                a writer failed (then exit status 3)
#
# The `b` lines tell the parent which operations each kill interrupted. Any exception in
# a writer thread is reported with an `E` line and ends the process at once, so a dead
# thread can never let a round pass.
#
# Every fact of a batch carries `batch: <batch id>, size: n` in its value, so the parent
# can recognise half-visible batches without trusting this report.

require "igniter-ledger"

path, durability, seed, threads = ARGV
rng = Random.new(Integer(seed))
threads = Integer(threads || "1")
out = $stdout
out.sync = true
report_lock = Mutex.new
report = lambda do |line|
  report_lock.synchronize { out.write("#{line}\n") }
end

fail_writer = lambda do |e|
  report.call("E #{e.class}: #{e.message.tr("\n", " ")}")
  exit!(3)
end

report.call("OPENING")
store = begin
  Igniter::Ledger.open(path, durability: durability.to_sym)
rescue Exception => e # rubocop:disable Lint/RescueException
  fail_writer.call(e)
end
report.call("READY #{store.fact_count}")

HOT_KEYS = 12
run = "#{Process.pid}-#{seed}"

workers = Array.new(threads) do |t|
  wrng = Random.new(rng.rand(2**32))
  Thread.new do
    n = 0
    loop do
      begin
        n += 1
        tag = "#{run}-#{t}-#{n}"
        case wrng.rand(100)
        when 0...45
          key = "k#{wrng.rand(HOT_KEYS)}"
          report.call("b #{t} w")
          f = store.write(store: :accounts, key: key,
                          value: { tag: tag, n: n, note: "x" * wrng.rand(200), list: [n, t, :w] })
          report.call("W #{f.id} accounts #{key} #{t}")
        when 45...70
          order = "o#{wrng.rand(8)}"
          report.call("b #{t} a")
          f = store.append(history: :orders, event: { order_id: order, tag: tag, qty: n % 5 },
                           partition_key: :order_id)
          report.call("A #{f.id} orders #{order} #{t}")
        when 70...97
          size = 2 + wrng.rand(30)
          report.call("b #{t} B")
          facts = store.transaction do |tx|
            size.times do |i|
              if i.even?
                tx.write(store: :accounts, key: "k#{wrng.rand(HOT_KEYS)}",
                         value: { batch: tag, size: size, i: i, pad: "y" * wrng.rand(100) })
              else
                tx.append(history: :orders, event: { order_id: "o#{wrng.rand(8)}", batch: tag, size: size, i: i },
                          partition_key: :order_id)
              end
            end
          end
          report.call("B #{tag} #{facts.size} #{facts.map(&:id).join(",")} #{t}")
        else
          report.call("b #{t} C")
          c = store.checkpoint
          report.call("C #{c[:fact_count]} #{t}")
        end
      rescue Exception => e # rubocop:disable Lint/RescueException
        fail_writer.call(e)
      end
    end
  end
end
workers.each(&:join)
