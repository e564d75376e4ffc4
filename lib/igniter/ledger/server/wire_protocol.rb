# frozen_string_literal: true

require "zlib"

module Igniter
  module Ledger
    # The frames every socket transport carries: `[u32 BE body length][body][u32 BE
    # CRC32(body)]`, the WAL's framing. Include it or call its functions directly.
    module WireProtocol
      # The largest body read_frame accepts unless told otherwise (16 MiB).
      MAX_FRAME_BYTES = 16 * 1024 * 1024

      # A frame that cannot be read: bad CRC, oversize length, or a stream cut inside it.
      class FrameError < StandardError; end

      module_function

      # The frame carrying `body` (a String, sent as bytes).
      def encode_frame(body)
        body = body.to_s.b
        [body.bytesize].pack("N") << body << [Zlib.crc32(body)].pack("N")
      end

      # Reads one frame's body from `io`; nil at a clean end of stream (before a frame).
      # Raises FrameError for a cut, oversize or corrupt frame, or (timeout: seconds) for
      # a frame that does not arrive whole in time (a slow client).
      def read_frame(io, max_bytes: MAX_FRAME_BYTES, timeout: nil)
        deadline = timeout && Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
        header = read_exact(io, 4, deadline)
        return nil if header.nil?

        length = header.unpack1("N")
        raise FrameError, "frame of #{length} bytes exceeds the limit of #{max_bytes}" if length > max_bytes

        body = length.zero? ? +"" : read_exact(io, length, deadline)
        raise FrameError, "stream ended inside a frame body" if body.nil?

        trailer = read_exact(io, 4, deadline)
        raise FrameError, "stream ended before a frame's CRC" if trailer.nil?
        raise FrameError, "frame CRC mismatch" unless trailer.unpack1("N") == Zlib.crc32(body)

        body.force_encoding(Encoding::UTF_8)
      end

      # Exactly n bytes, or nil when the stream ends first (raises FrameError when it ends
      # after some bytes of them).
      def read_exact(io, n, deadline = nil)
        buf = +""
        while buf.bytesize < n
          chunk = deadline ? read_before(io, n - buf.bytesize, deadline) : io.read(n - buf.bytesize)
          next if chunk == :wait_readable

          if chunk.nil? || chunk.empty?
            return nil if buf.empty?

            raise FrameError, "stream ended after #{buf.bytesize} of #{n} bytes"
          end
          buf << chunk
        end
        buf.b
      end

      # Up to n bytes, waiting no later than deadline (FrameError after it).
      def read_before(io, n, deadline)
        left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
        raise FrameError, "frame not received in time (slow client)" if left <= 0 || !io.wait_readable(left)

        io.read_nonblock(n, exception: false)
      end
    end
  end
end
