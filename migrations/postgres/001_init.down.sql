DROP TABLE trial_attrs;
DROP TABLE trial_values;
DROP TABLE trial_params;
DROP TABLE trials;
DROP TABLE study_attrs;
DROP TABLE studies;
