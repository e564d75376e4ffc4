# frozen_string_literal: true

require "json"
require "time"

module Igniter
  module Ledger
    # The server's log (the reference's ServerLogger): one line per message,
    # `[2026-05-03T12:00:00.123Z] INFO message`, and structured events as
    # `[EVENT] {"event":"server_start","ts":"...",...}`. Messages below the level are
    # dropped; a nil io writes nothing. Thread-safe: each line is written whole.
    class ServerLogger
      LEVELS = { debug: 0, info: 1, warn: 2, error: 3 }.freeze

      attr_reader :io, :level

      def initialize(io = $stderr, level = :info)
        @io = io
        @level = level.to_sym
        raise ArgumentError, "log level must be one of #{LEVELS.keys.inspect}, got #{level.inspect}" unless LEVELS.key?(@level)

        @lock = Mutex.new
      end

      LEVELS.each_key do |name|
        define_method(name) { |message| log(name, message) }
      end

      # Whether a message at `level` is written.
      def enabled?(level)
        !@io.nil? && LEVELS.fetch(level.to_sym, 1) >= LEVELS[@level]
      end

      # Writes `[LEVEL-less] [EVENT] {json}` with event: name, ts: now and the fields.
      def event(name, level: :info, **fields)
        return unless enabled?(level)

        line = "[EVENT] #{JSON.generate({ event: name.to_s, ts: now }.merge(fields))}\n"
        write(line)
      end

      def log(level, message)
        return unless enabled?(level)

        write("[#{now}] #{level.to_s.upcase} #{message}\n")
      end

      private

      def now
        Time.now.utc.iso8601(3)
      end

      def write(line)
        @lock.synchronize do
          @io.write(line)
          @io.flush if @io.respond_to?(:flush)
        end
      rescue ::IOError, SystemCallError
        nil
      end
    end
  end
end
