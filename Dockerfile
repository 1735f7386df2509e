# The collector as a self-hosted server against an external S3 (see the compose files).
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt chalice==1.34.0 waitress==3.0.2
COPY app.py ./
COPY chalicelib ./chalicelib
COPY .chalice ./.chalice
ENV SUBMIT_SERVER_PORT=8080 REPORTS_SERVER_PORT=8081
EXPOSE 8080 8081
CMD ["python", "-m", "chalicelib.localrun", "--external-s3", "--host", "0.0.0.0"]
