-- Rooms published in the room directory (/publicRooms).
CREATE TABLE room_directory (
    room_id  TEXT PRIMARY KEY REFERENCES rooms(room_id) ON DELETE CASCADE
);
