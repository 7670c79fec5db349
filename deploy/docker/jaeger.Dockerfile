# Local stand-in for the official Jaeger (v2) image, for machines that
# cannot pull it: the jaeger binary built from its Go module (its own go.sum
# verifies every dependency), with the same default all-in-one
# configuration (memory storage), and busybox for wget in the health check.
FROM scratch
COPY jaeger /usr/local/bin/jaeger
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/usr/local/bin:/bin JAEGER_LISTEN_HOST=0.0.0.0
USER 10001
# OTLP gRPC and HTTP, query API and UI, health check.
EXPOSE 4317 4318 16686 13133
ENTRYPOINT ["/usr/local/bin/jaeger"]
