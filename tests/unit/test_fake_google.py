"""The fake Google server, driven by the real google-auth, google-auth-oauthlib and googleapiclient."""

from __future__ import annotations

import base64
import ssl
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import certifi
import google_auth_httplib2
import httplib2
import httpx
import pytest
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import Request
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow
from googleapiclient.discovery import Resource, build
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaInMemoryUpload
from oauthlib.oauth2.rfc6749.errors import InvalidGrantError

from maos_testing.google.fake_server import FakeGoogle

MAIL = "https://mail.google.com/"
GMAIL_READ = "https://www.googleapis.com/auth/gmail.readonly"
CALENDAR = "https://www.googleapis.com/auth/calendar"
DRIVE = "https://www.googleapis.com/auth/drive"
ALL = [MAIL, CALENDAR, DRIVE]
REDIRECT = "http://127.0.0.1:1/oauth/callback"
DOC = "application/vnd.google-apps.document"
T0 = 1_900_000_000.0  # 2030-03-17T17:46:40Z


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGoogle]:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake speaks plain http
    server = FakeGoogle().start()
    monkeypatch.setattr(httplib2, "CA_CERTS", server.ca_file)  # media uploads arrive over TLS
    yield server
    server.stop()


def _flow(fake: FakeGoogle, scopes: list[str]) -> Flow:
    config = {"installed": {"client_id": fake.client_id, "client_secret": fake.client_secret,
                            "auth_uri": fake.auth_uri, "token_uri": fake.token_uri, "redirect_uris": [REDIRECT]}}
    return Flow.from_client_config(config, scopes=scopes, redirect_uri=REDIRECT)


def _consent(url: str) -> dict[str, str]:
    """Open the consent URL, don't follow the redirect: the query the app's callback would get."""
    response = httpx.get(url, follow_redirects=False)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def grant(fake: FakeGoogle, scopes: list[str]) -> Credentials:
    """The whole auth-code flow with PKCE, as an installed app runs it."""
    flow = _flow(fake, scopes)
    url, state = flow.authorization_url(access_type="offline", prompt="consent")
    callback = _consent(url)
    assert callback["state"] == state
    flow.fetch_token(code=callback["code"])
    creds = flow.credentials
    assert isinstance(creds, Credentials)
    return creds


def service(fake: FakeGoogle, creds: Credentials, name: str, endpoint: str | None = None) -> Resource:
    version = {"gmail": "v1", "calendar": "v3", "drive": "v3"}[name]
    return build(name, version, credentials=creds, client_options={"api_endpoint": endpoint or fake.url},
                 static_discovery=True, cache_discovery=False)


def reason(exc: HttpError) -> str:
    details = exc.error_details
    assert isinstance(details, list) and details, exc.content
    return str(details[0]["reason"])


def raw_mail(to: str, subject: str, body: str, **headers: str) -> str:
    msg = EmailMessage()
    msg["To"], msg["From"], msg["Subject"] = to, "owner@example.test", subject
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return base64.urlsafe_b64encode(msg.as_bytes()).decode()


# OAuth


def test_auth_code_flow_refresh_and_revoke(fake: FakeGoogle) -> None:
    creds = grant(fake, [MAIL])
    assert creds.refresh_token and creds.token and creds.token_uri == fake.token_uri
    first = creds.token
    creds.refresh(Request())
    assert creds.token != first
    assert [r["grant_type"] for r in fake.token_requests] == ["authorization_code", "refresh_token"]
    assert "code_verifier" in fake.token_requests[0]
    assert service(fake, creds, "gmail").users().getProfile(userId="me").execute()["emailAddress"] == \
        "owner@example.test"

    fake.revoke_all()
    with pytest.raises(RefreshError, match="invalid_grant"):
        creds.refresh(Request())


def test_revoke_endpoint_revokes_the_grant(fake: FakeGoogle) -> None:
    creds = grant(fake, [MAIL])
    assert httpx.post(fake.revoke_uri, params={"token": creds.refresh_token}).status_code == 200
    again = httpx.post(fake.revoke_uri, data={"token": creds.refresh_token})
    assert again.status_code == 400 and again.json()["error"] == "invalid_token"
    with pytest.raises(RefreshError):
        creds.refresh(Request())
    profile = httpx.get(fake.url + "gmail/v1/users/me/profile", headers={"Authorization": f"Bearer {creds.token}"})
    assert profile.status_code == 401  # the access token went with the grant
    assert profile.json()["error"]["status"] == "UNAUTHENTICATED"


def test_wrong_code_verifier_and_reused_code_are_refused(fake: FakeGoogle) -> None:
    flow = _flow(fake, [MAIL])
    url, _ = flow.authorization_url(access_type="offline")
    code = _consent(url)["code"]
    good_verifier = flow.code_verifier
    flow.code_verifier = "x" * 64
    with pytest.raises(InvalidGrantError):
        flow.fetch_token(code=code)

    url, _ = flow.authorization_url(access_type="offline")
    code = _consent(url)["code"]
    assert flow.code_verifier != good_verifier
    flow.fetch_token(code=code)
    with pytest.raises(InvalidGrantError):  # a code works once
        flow.fetch_token(code=code)


def test_consent_page_checks_client_and_merges_granted_scopes(fake: FakeGoogle) -> None:
    query = {"client_id": "someone-else", "redirect_uri": REDIRECT, "response_type": "code", "scope": MAIL}
    assert httpx.get(fake.auth_uri, params=query).status_code == 400

    query["client_id"] = fake.client_id
    assert _consent(str(httpx.URL(fake.auth_uri, params={**query, "scope": GMAIL_READ})))["scope"] == GMAIL_READ
    merged = _consent(str(httpx.URL(fake.auth_uri, params={**query, "scope": CALENDAR,
                                                           "include_granted_scopes": "true"})))
    assert set(merged["scope"].split()) == {GMAIL_READ, CALENDAR}
    alone = _consent(str(httpx.URL(fake.auth_uri, params={**query, "scope": CALENDAR})))
    assert alone["scope"] == CALENDAR


def test_expired_access_token_is_refreshed_by_the_client(fake: FakeGoogle) -> None:
    creds = grant(fake, [MAIL])
    gmail = service(fake, creds, "gmail")
    fake.expire_access_tokens()
    assert gmail.users().getProfile(userId="me").execute()["emailAddress"] == fake.account_email
    assert [r["grant_type"] for r in fake.token_requests][-1] == "refresh_token"


def test_scopes_are_enforced_per_method(fake: FakeGoogle) -> None:
    gmail = service(fake, grant(fake, [GMAIL_READ]), "gmail")
    assert gmail.users().messages().list(userId="me").execute() == {"resultSizeEstimate": 0}
    with pytest.raises(HttpError) as caught:
        gmail.users().messages().send(userId="me", body={"raw": raw_mail("a@x.test", "s", "b")}).execute()
    assert caught.value.status_code == 403 and reason(caught.value) == "insufficientPermissions"
    with pytest.raises(HttpError) as caught:
        service(fake, grant(fake, [GMAIL_READ]), "drive").files().list().execute()
    assert caught.value.status_code == 403
    assert fake.sent_messages() == [] and fake.side_effects == []


def test_unimplemented_methods_and_unknown_paths(fake: FakeGoogle) -> None:
    creds = grant(fake, ALL)
    with pytest.raises(HttpError) as caught:
        service(fake, creds, "gmail").users().history().list(userId="me", startHistoryId="1").execute()
    assert caught.value.status_code == 501 and reason(caught.value) == "notImplemented"
    answer = httpx.get(fake.url + "gmail/v1/nothing/here", headers={"Authorization": f"Bearer {creds.token}"})
    assert answer.status_code == 404
    assert answer.json()["error"]["status"] == "NOT_FOUND"
    assert answer.json()["error"]["errors"][0]["reason"] == "notFound"
    with pytest.raises(ValueError, match="unknown Google method"):
        fake.fail_next("gmail.users.messages.sned")


# Gmail


def test_gmail_send_is_recorded_and_searchable(fake: FakeGoogle) -> None:
    gmail = service(fake, grant(fake, [MAIL]), "gmail")
    seeded = fake.add_message(sender="ann@x.test", to=fake.account_email, subject="Lunch?", body="Are you free?",
                              headers={"Message-ID": "<seed-1@x.test>"})
    raw = raw_mail("ann@x.test", "Re: Lunch?", "Yes, noon.", Cc="bob@x.test", Message_ID="<reply-1@app.test>",
                   In_Reply_To="<seed-1@x.test>")
    sent = gmail.users().messages().send(userId="me", body={"raw": raw}).execute()
    assert sent["labelIds"] == ["SENT"] and sent["threadId"] == seeded["threadId"]

    [mail] = fake.sent_messages()
    assert mail["to"] == ["ann@x.test"] and mail["cc"] == ["bob@x.test"] and mail["subject"] == "Re: Lunch?"
    assert mail["body"].strip() == "Yes, noon."
    own = mail["headers"]["Message-ID"]  # as Gmail's API does: its own Message-ID, not the client's
    assert own.startswith("<") and own != "<reply-1@app.test>"
    [effect] = fake.effects("gmail.users.messages.send")
    assert effect["path_params"] == {"userId": "me"} and "Yes, noon." in effect["body"]["raw_decoded"]

    for q in (f"in:sent rfc822msgid:{own}", f"rfc822msgid:{own.strip('<>')}"):
        assert gmail.users().messages().list(userId="me", q=q).execute()["messages"] == \
            [{"id": sent["id"], "threadId": sent["threadId"]}]
    assert "messages" not in gmail.users().messages().list(userId="me", q=f"in:inbox rfc822msgid:{own}").execute()
    assert "messages" not in gmail.users().messages().list(userId="me", q="rfc822msgid:reply-1@app.test").execute()

    bare = gmail.users().messages().send(userId="me", body={"raw": raw_mail("c@x.test", "New", "Hi")}).execute()
    assert bare["threadId"] == bare["id"]
    assert fake.sent_messages()[1]["headers"]["Message-ID"].startswith("<")


def test_gmail_search_operators(fake: FakeGoogle) -> None:
    gmail = service(fake, grant(fake, [GMAIL_READ]), "gmail")
    day = 86400.0
    now = time.time()
    old = fake.add_message(sender="Ann <ann@x.test>", to=fake.account_email, subject="Invoice 42",
                           body="Please pay the invoice", date=now - 30 * day, labels=("INBOX",))
    new = fake.add_message(sender="bob@y.test", to=[fake.account_email, "zed@y.test"], subject="Party",
                           body="Cake at five", date=now - day, labels=("INBOX", "UNREAD", "Friends"))
    spam = fake.add_message(sender="spam@z.test", to=fake.account_email, subject="Cake deal", body="buy",
                            labels=("SPAM",))

    def ids(q: str = "", **kwargs: Any) -> list[str]:
        found = gmail.users().messages().list(userId="me", q=q, **kwargs).execute()
        return [m["id"] for m in found.get("messages", [])]

    assert ids() == [new["id"], old["id"]]  # newest first, no spam
    assert ids("is:unread") == [new["id"]]
    assert ids("from:ann") == [old["id"]] and ids("to:zed@y.test") == [new["id"]]
    assert ids("subject:invoice") == [old["id"]] and ids("cake") == [new["id"]]
    assert ids('"pay the invoice"') == [old["id"]] and ids("-cake") == [old["id"]]
    assert ids("label:friends") == [new["id"]] and ids("label:nope") == []
    assert ids("newer_than:7d") == [new["id"]] and ids(f"after:{int(now - 7 * day)}") == [new["id"]]
    assert ids("after:2000/01/01 in:inbox") == [new["id"], old["id"]]
    assert ids("cake in:anywhere") == [spam["id"], new["id"]] and ids("in:spam") == [spam["id"]]
    assert ids(labelIds=["UNREAD"]) == [new["id"]]
    page = gmail.users().messages().list(userId="me", maxResults=1).execute()
    rest = gmail.users().messages().list(userId="me", maxResults=1, pageToken=page["nextPageToken"]).execute()
    assert [page["messages"][0]["id"], rest["messages"][0]["id"]] == [new["id"], old["id"]]
    assert "nextPageToken" not in rest


def test_gmail_message_formats(fake: FakeGoogle) -> None:
    gmail = service(fake, grant(fake, [GMAIL_READ]), "gmail")
    seeded = fake.add_message(sender="ann@x.test", to=fake.account_email, subject="Hi", body="<p>Hello <b>you</b></p>",
                              html=True, date=T0)
    get = gmail.users().messages().get
    full = get(userId="me", id=seeded["id"]).execute()
    assert full["payload"]["mimeType"] == "multipart/alternative" and full["internalDate"] == str(int(T0 * 1000))
    plain, rich = full["payload"]["parts"]
    assert plain["partId"] == "0" and plain["mimeType"] == "text/plain"
    assert base64.urlsafe_b64decode(plain["body"]["data"] + "==").decode().strip() == "Hello you"
    assert rich["mimeType"] == "text/html" and full["snippet"] == "Hello you"

    meta = get(userId="me", id=seeded["id"], format="metadata", metadataHeaders=["Subject", "From"]).execute()
    assert {h["name"] for h in meta["payload"]["headers"]} == {"Subject", "From"}
    assert "payload" not in get(userId="me", id=seeded["id"], format="minimal").execute()
    raw = get(userId="me", id=seeded["id"], format="raw").execute()["raw"]
    assert b"Subject: Hi" in base64.urlsafe_b64decode(raw + "==")
    with pytest.raises(HttpError) as caught:
        get(userId="me", id="missing").execute()
    assert caught.value.status_code == 404


def test_gmail_labels_modify_and_threads(fake: FakeGoogle) -> None:
    gmail = service(fake, grant(fake, [MAIL]), "gmail")
    users = gmail.users()
    label = users.labels().create(userId="me", body={"name": "Clients"}).execute()
    assert label["type"] == "user"
    names = {item["name"] for item in users.labels().list(userId="me").execute()["labels"]}
    assert {"INBOX", "SENT", "UNREAD", "STARRED", "IMPORTANT", "DRAFT", "SPAM", "TRASH", "Clients"} <= names
    with pytest.raises(HttpError) as caught:
        users.labels().create(userId="me", body={"name": "clients"}).execute()
    assert caught.value.status_code == 409

    first = fake.add_message(sender="ann@x.test", to=fake.account_email, subject="Q", body="one", date=T0)
    second = fake.add_message(sender="ann@x.test", to=fake.account_email, subject="Re: Q", body="two",
                              thread_id=first["threadId"], date=T0 + 60)
    changed = users.messages().modify(userId="me", id=first["id"],
                                      body={"addLabelIds": [label["id"]], "removeLabelIds": ["UNREAD"]}).execute()
    assert set(changed["labelIds"]) == {"INBOX", label["id"]}
    with pytest.raises(HttpError) as caught:
        users.messages().modify(userId="me", id=first["id"], body={"addLabelIds": ["Label_99"]}).execute()
    assert caught.value.status_code == 400
    users.messages().batchModify(userId="me", body={"ids": [first["id"], second["id"]],
                                                    "addLabelIds": ["STARRED"]}).execute()
    assert len(fake.effects("gmail.users.messages.batchModify")) == 1

    threads = users.threads().list(userId="me", q="is:starred").execute()["threads"]
    assert [t["id"] for t in threads] == [first["threadId"]]
    thread = users.threads().get(userId="me", id=first["threadId"]).execute()
    assert [m["id"] for m in thread["messages"]] == [first["id"], second["id"]]


def test_gmail_drafts(fake: FakeGoogle) -> None:
    drafts = service(fake, grant(fake, [MAIL]), "gmail").users().drafts()
    draft = drafts.create(userId="me", body={"message": {"raw": raw_mail("dan@x.test", "Plan", "Draft text")}}).execute()
    assert draft["message"]["labelIds"] == ["DRAFT"]
    assert [d["id"] for d in drafts.list(userId="me").execute()["drafts"]] == [draft["id"]]
    assert drafts.get(userId="me", id=draft["id"]).execute()["message"]["payload"]["headers"]
    assert fake.sent_messages() == []
    sent = drafts.send(userId="me", body={"id": draft["id"]}).execute()
    assert sent["labelIds"] == ["SENT"]
    assert [m["subject"] for m in fake.sent_messages()] == ["Plan"]
    assert "drafts" not in drafts.list(userId="me").execute()


# Calendar


@pytest.mark.parametrize("prefix", ["", "calendar/v3/"])  # build's default layout, and an endpoint naming the path
def test_calendar_event_lifecycle(fake: FakeGoogle, prefix: str) -> None:
    events = service(fake, grant(fake, [CALENDAR]), "calendar", fake.url + prefix).events()
    body = {"id": "maos0001abc", "summary": "Review", "start": {"dateTime": "2030-03-18T10:00:00Z"},
            "end": {"dateTime": "2030-03-18T11:00:00+00:00"}, "attendees": [{"email": "ann@x.test"}]}
    created = events.insert(calendarId="primary", body=body, sendUpdates="all").execute()
    assert created["id"] == "maos0001abc" and created["status"] == "confirmed"
    assert fake.effects("calendar.events.insert")[0]["query"]["sendUpdates"] == "all"
    with pytest.raises(HttpError) as caught:
        events.insert(calendarId="primary", body=body).execute()
    assert caught.value.status_code == 409 and reason(caught.value) == "duplicate"
    with pytest.raises(HttpError) as caught:
        events.insert(calendarId="primary", body={**body, "id": "BAD_ID"}).execute()
    assert caught.value.status_code == 400

    patched = events.patch(calendarId="primary", eventId="maos0001abc", body={"summary": "Review v2"}).execute()
    assert patched["summary"] == "Review v2" and patched["attendees"][0]["email"] == "ann@x.test"
    updated = events.update(calendarId=fake.account_email, eventId="maos0001abc",
                            body={**body, "summary": "Final"}).execute()
    assert updated["summary"] == "Final" and updated["sequence"] == 2
    assert events.get(calendarId="primary", eventId="maos0001abc").execute()["summary"] == "Final"

    events.delete(calendarId="primary", eventId="maos0001abc").execute()
    assert fake.events() == []
    for call in (events.get(calendarId="primary", eventId="maos0001abc"),
                 events.delete(calendarId="primary", eventId="maos0001abc")):
        with pytest.raises(HttpError) as caught:
            call.execute()
        assert caught.value.status_code == 410
    with pytest.raises(HttpError) as caught:
        events.get(calendarId="primary", eventId="nothere1").execute()
    assert caught.value.status_code == 404


def test_calendar_list_and_freebusy(fake: FakeGoogle) -> None:
    calendar = service(fake, grant(fake, [CALENDAR]), "calendar")
    hour = 3600.0
    late = fake.add_event(summary="Dentist", start=T0 + 5 * hour, end=T0 + 6 * hour)
    early = fake.add_event(summary="Standup", start=T0 + hour, end=T0 + 2 * hour, attendees=["ann@x.test"],
                           description="daily sync")
    fake.add_busy("ann@x.test", T0 + 3 * hour, T0 + 4 * hour)
    fake.add_busy("ann@x.test", T0 + 3.5 * hour, T0 + 4.5 * hour)

    listing = calendar.events().list(calendarId="primary", timeMin="2030-03-17T18:00:00Z",
                                     timeMax="2030-03-18T00:00:00Z", singleEvents=True,
                                     orderBy="startTime").execute()
    assert [e["id"] for e in listing["items"]] == [early["id"], late["id"]]
    assert [e["id"] for e in calendar.events().list(calendarId="primary", q="sync").execute()["items"]] == \
        [early["id"]]
    with pytest.raises(HttpError):
        calendar.events().list(calendarId="primary", orderBy="startTime").execute()
    [entry] = calendar.calendarList().list().execute()["items"]
    assert entry["id"] == fake.account_email and entry["primary"] is True

    answer = calendar.freebusy().query(body={
        "timeMin": "2030-03-17T17:46:40Z", "timeMax": "2030-03-17T23:16:40Z",
        "items": [{"id": "primary"}, {"id": "ann@x.test"}, {"id": "nobody@x.test"}]}).execute()
    busy = answer["calendars"]
    assert busy["primary"]["busy"] == [{"start": "2030-03-17T18:46:40.000Z", "end": "2030-03-17T19:46:40.000Z"},
                                       {"start": "2030-03-17T22:46:40.000Z", "end": "2030-03-17T23:16:40.000Z"}]
    assert busy["ann@x.test"]["busy"] == [{"start": "2030-03-17T20:46:40.000Z", "end": "2030-03-17T22:16:40.000Z"}]
    assert busy["nobody@x.test"]["errors"][0]["reason"] == "notFound"


# Drive


def test_drive_create_list_get_export(fake: FakeGoogle) -> None:
    files = service(fake, grant(fake, [DRIVE]), "drive").files()
    sop = fake.add_file(name="SOP onboarding", mime_type=DOC, content="Step 1: say hello",
                        app_properties={"maos": "sop"})
    pdf = fake.add_file(name="scan.pdf", mime_type="application/pdf", content=b"%PDF-1", parents=["folder1"])

    upload = MediaInMemoryUpload(b"Call the client within a day.", mimetype="text/plain")
    made = files.create(body={"name": "SOP follow-up", "mimeType": DOC, "appProperties": {"maos": "sop"}},
                        media_body=upload, fields="id,name,webViewLink").execute()
    assert files.export_media(fileId=made["id"], mimeType="text/plain").execute() == \
        b"Call the client within a day."
    assert fake.effects("drive.files.create")[0]["body"]["raw_decoded"] == "Call the client within a day."
    folder = files.create(body={"name": "Archive", "mimeType": "application/vnd.google-apps.folder"}).execute()
    assert folder["mimeType"] == "application/vnd.google-apps.folder"

    def names(q: str) -> list[str]:
        return [f["name"] for f in files.list(q=q, fields="files(id,name)").execute()["files"]]

    assert names("appProperties has { key='maos' and value='sop' } and trashed = false") == \
        ["SOP onboarding", "SOP follow-up"]
    assert names("name contains 'sop' and fullText contains 'hello'") == ["SOP onboarding"]
    assert names(f"mimeType = '{DOC}' and not name contains 'follow'") == ["SOP onboarding"]
    assert names("'folder1' in parents") == ["scan.pdf"]
    assert names("mimeType != 'application/pdf' and (name = 'Archive' or fullText contains 'client')") == \
        ["SOP follow-up", "Archive"]
    with pytest.raises(HttpError) as caught:
        files.list(q="name wibble 'x'").execute()
    assert caught.value.status_code == 400

    meta = files.get(fileId=sop["id"]).execute()
    assert meta["webViewLink"].startswith("https://docs.google.com/document/d/") and meta["appProperties"]
    assert files.get_media(fileId=pdf["id"]).execute() == b"%PDF-1"
    with pytest.raises(HttpError) as caught:
        files.get_media(fileId=sop["id"]).execute()
    assert caught.value.status_code == 403 and reason(caught.value) == "fileNotDownloadable"
    with pytest.raises(HttpError) as caught:
        files.get(fileId="missing").execute()
    assert caught.value.status_code == 404


# Faults


def test_media_uploads_arrive_over_tls(fake: FakeGoogle, monkeypatch: pytest.MonkeyPatch) -> None:
    """googleapiclient keeps https for uploads to a custom endpoint: the fake answers TLS on the same port."""
    files = service(fake, grant(fake, [DRIVE]), "drive").files()
    monkeypatch.setattr(httplib2, "CA_CERTS", certifi.where())
    with pytest.raises(ssl.SSLCertVerificationError):
        files.create(body={"name": "n"}, media_body=MediaInMemoryUpload(b"x", mimetype="text/plain")).execute()
    assert files.create(body={"name": "plain metadata goes over http"}).execute()["name"]


def test_fail_next_answers_like_a_rate_limit(fake: FakeGoogle) -> None:
    gmail = service(fake, grant(fake, [MAIL]), "gmail")
    fake.fail_next("gmail.users.getProfile", 429, count=2, retry_after=3)
    fake.fail_next("gmail.users.getProfile", 403)
    for status, expected in ((429, "rateLimitExceeded"), (429, "rateLimitExceeded"), (403, "userRateLimitExceeded")):
        with pytest.raises(HttpError) as caught:
            gmail.users().getProfile(userId="me").execute()
        assert caught.value.status_code == status and reason(caught.value) == expected
        if status == 429:
            assert caught.value.resp["retry-after"] == "3"
    assert gmail.users().getProfile(userId="me").execute()["emailAddress"] == fake.account_email


def test_hold_delays_the_answer_after_or_before_the_effect(fake: FakeGoogle) -> None:
    creds = grant(fake, [MAIL])
    gmail = service(fake, creds, "gmail")
    fake.hold("gmail.users.messages.send", 0.3)
    began = time.monotonic()
    gmail.users().messages().send(userId="me", body={"raw": raw_mail("a@x.test", "slow", "b")}).execute()
    assert time.monotonic() - began >= 0.3

    impatient = build("gmail", "v1", static_discovery=True, cache_discovery=False,
                      client_options={"api_endpoint": fake.url},
                      http=google_auth_httplib2.AuthorizedHttp(creds, http=httplib2.Http(timeout=0.2)))
    fake.hold("gmail.users.messages.send", 2.0)  # it happens, but the answer is lost
    with pytest.raises(TimeoutError):
        impatient.users().messages().send(userId="me", body={"raw": raw_mail("a@x.test", "lost", "b")}).execute()
    assert [m["subject"] for m in fake.sent_messages()] == ["slow", "lost"]

    fake.hold("gmail.users.messages.send", 1.0, after_effect=False)  # the caller gives up before it happens
    with pytest.raises(TimeoutError):
        impatient.users().messages().send(userId="me", body={"raw": raw_mail("a@x.test", "late", "b")}).execute()
    assert len(fake.sent_messages()) == 2
    deadline = time.monotonic() + 5
    while len(fake.sent_messages()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [m["subject"] for m in fake.sent_messages()] == ["slow", "lost", "late"]


def test_starting_twice_serves_once_and_stop_ends_it() -> None:
    """`with FakeGoogle().start() as f` starts it twice; a second serving loop outlived `stop` and spun
    on the closed socket (it took most of a core for the rest of the test session)."""
    before = {t for t in threading.enumerate() if t.name == "fake-google"}
    with FakeGoogle().start() as server:
        assert httpx.get(server.url + "nope").status_code == 404
        assert len({t for t in threading.enumerate() if t.name == "fake-google"} - before) == 1
    assert {t for t in threading.enumerate() if t.name == "fake-google" and t.is_alive()} - before == set()
