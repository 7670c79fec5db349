# Local stand-in for the official Redis image, for machines that cannot
# pull it: redis-server and redis-cli from Debian's packages with the shared
# libraries they load, in an empty image.
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
